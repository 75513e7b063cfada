-- title: summary_series_values: top-level values per series
-- description: Adds (:sign = 1) or takes away (:sign = -1) the instances :ids from
--   summary_series_values: per series, top-level tag and VR, each COALESCE(value, hash, '') with
--   its number and the elements holding it.
INSERT INTO summary_series_values (series_id, tag_id, vr, value_key, value, number, elements)
SELECT v.series_id, v.tag_id, v.vr, v.value_key, v.value, MIN(v.number), :sign * COUNT(*)
FROM (
    SELECT i.series_id, e.tag_id, e.vr, COALESCE(e.value, e.hash, '') AS value, e.number,
           CASE WHEN LENGTH(COALESCE(e.value, e.hash, '')) <= 200 THEN COALESCE(e.value, e.hash, '')
                ELSE SUBSTR(COALESCE(e.value, e.hash, ''), 1, 200) || '#' || CAST(e.instance_id AS TEXT) || '.' || CAST(e.seq AS TEXT)
           END AS value_key
    FROM elements AS e
    JOIN instances AS i ON i.id = e.instance_id
    WHERE e.instance_id IN :ids AND e.depth = 0
) AS v
WHERE true
GROUP BY v.series_id, v.tag_id, v.vr, v.value_key, v.value
ORDER BY v.series_id, v.tag_id, v.vr, v.value_key
ON CONFLICT (series_id, tag_id, vr, value_key) DO UPDATE
SET elements = summary_series_values.elements + excluded.elements,
    number = COALESCE(summary_series_values.number, excluded.number)
