-- title: summary_series_values: top-level values per series
-- description: Adds (:sign = 1) or takes away (:sign = -1) the instances in summary_batch_values
--   from summary_series_values: per series, top-level tag and VR, each COALESCE(value, hash, '')
--   with its number and the elements holding it.
INSERT INTO summary_series_values (series_id, tag_id, vr, value_key, value, number, elements)
SELECT b.series_id, b.tag_id, b.vr,
       CASE WHEN b.long_id = '' THEN COALESCE(b.value, b.hash, '')
            ELSE SUBSTR(COALESCE(b.value, b.hash, ''), 1, 200) || '#' || b.long_id
       END,
       COALESCE(b.value, b.hash, ''), MIN(b.number), :sign * SUM(b.elements)
FROM summary_batch_values AS b
WHERE b.top = 1
GROUP BY b.series_id, b.tag_id, b.vr, b.long_id, COALESCE(b.value, b.hash, '')
ORDER BY b.series_id, b.tag_id, b.vr, b.long_id, COALESCE(b.value, b.hash, '')
ON CONFLICT (series_id, tag_id, vr, value_key) DO UPDATE
SET elements = summary_series_values.elements + excluded.elements,
    number = COALESCE(summary_series_values.number, excluded.number)
