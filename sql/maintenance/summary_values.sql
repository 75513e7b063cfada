-- title: summary_values: values of each tag per site
-- description: Adds (:sign = 1) or takes away (:sign = -1) the instances in summary_batch_values
--   from summary_values: per site and tag, each value held with VM above 0, UIDs, dates and
--   times left out.
INSERT INTO summary_values (site, tag_id, value_key, value, elements)
SELECT b.site, b.tag_id,
       CASE WHEN b.long_id = '' THEN b.value ELSE SUBSTR(b.value, 1, 200) || '#' || b.long_id END,
       b.value, :sign * SUM(b.elements)
FROM summary_batch_values AS b
WHERE b.filled = 1 AND b.value IS NOT NULL AND b.vr NOT IN ('UI', 'DA', 'DT', 'TM')
GROUP BY b.site, b.tag_id, b.long_id, b.value
ORDER BY b.site, b.tag_id, b.long_id, b.value
ON CONFLICT (site, tag_id, value_key) DO UPDATE
SET elements = summary_values.elements + excluded.elements
