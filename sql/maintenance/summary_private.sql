-- title: summary_private: private elements per series, site, creator and group
-- description: Adds (:sign = 1) or takes away (:sign = -1) the instances :ids from summary_private:
--   per series, site, private creator and odd group, the private elements and the instances
--   holding them. An instance sits in one series, so instance counts add up across series.
INSERT INTO summary_private (series_id, site, private_creator, private_group, elements, instances)
SELECT i.series_id, COALESCE(i.site, ''), t.private_creator, SUBSTR(t.tag_hex, 1, 4),
       :sign * COUNT(*), :sign * COUNT(DISTINCT e.instance_id)
FROM elements AS e
JOIN tags AS t ON t.id = e.tag_id
JOIN instances AS i ON i.id = e.instance_id
WHERE e.instance_id IN :ids AND t.private_creator <> ''
GROUP BY i.series_id, COALESCE(i.site, ''), t.private_creator, SUBSTR(t.tag_hex, 1, 4)
ORDER BY i.series_id, COALESCE(i.site, ''), t.private_creator, SUBSTR(t.tag_hex, 1, 4)
ON CONFLICT (series_id, site, private_creator, private_group) DO UPDATE
SET elements = summary_private.elements + excluded.elements,
    instances = summary_private.instances + excluded.instances
