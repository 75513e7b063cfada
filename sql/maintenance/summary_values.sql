-- title: summary_values: values of each tag per site
-- description: Adds (:sign = 1) or takes away (:sign = -1) the instances :ids from summary_values:
--   per site and tag, each value held with VM above 0, UIDs, dates and times left out.
INSERT INTO summary_values (site, tag_id, value_key, value, elements)
SELECT v.site, v.tag_id, v.value_key, v.value, :sign * COUNT(*)
FROM (
    SELECT COALESCE(i.site, '') AS site, e.tag_id, e.value,
           CASE WHEN LENGTH(e.value) <= 200 THEN e.value
                ELSE SUBSTR(e.value, 1, 200) || '#' || CAST(e.instance_id AS TEXT) || '.' || CAST(e.seq AS TEXT)
           END AS value_key
    FROM elements AS e
    JOIN instances AS i ON i.id = e.instance_id
    WHERE e.instance_id IN :ids
      AND e.vm > 0 AND e.value IS NOT NULL AND e.vr NOT IN ('UI', 'DA', 'DT', 'TM')
) AS v
WHERE true
GROUP BY v.site, v.tag_id, v.value_key, v.value
ORDER BY v.site, v.tag_id, v.value_key
ON CONFLICT (site, tag_id, value_key) DO UPDATE
SET elements = summary_values.elements + excluded.elements
