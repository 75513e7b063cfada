-- title: summary_phi_values: the values of summary_phi_groups
-- description: Adds (:sign = 1) or takes away (:sign = -1) the instances in summary_batch_phi from
--   summary_phi_values: each value of each group of summary_phi_groups, with its elements.
INSERT INTO summary_phi_values (site, tag, name, private_creator, category, action, value_key, value, elements)
SELECT v.site, v.tag, v.name, v.private_creator, v.category, v.action, v.value_key, v.value, :sign * COUNT(*)
FROM (
    SELECT h.site, h.tag, h.name, h.private_creator, h.category, h.action, h.value,
           CASE WHEN LENGTH(h.value) <= 200 THEN h.value
                ELSE SUBSTR(h.value, 1, 200) || '#' || CAST(h.instance_id AS TEXT) || '.' || CAST(h.seq AS TEXT)
           END AS value_key
    FROM summary_batch_phi AS h
    WHERE h.value IS NOT NULL
) AS v
WHERE true
GROUP BY v.site, v.tag, v.name, v.private_creator, v.category, v.action, v.value_key, v.value
ORDER BY v.site, v.tag, v.name, v.private_creator, v.category, v.action, v.value_key
ON CONFLICT (site, tag, name, private_creator, category, action, value_key) DO UPDATE
SET elements = summary_phi_values.elements + excluded.elements
