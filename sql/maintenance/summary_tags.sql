-- title: summary_tags: instances holding each tag per site
-- description: Adds (:sign = 1) or takes away (:sign = -1) the instances :ids from summary_tags:
--   per site and tag, the instances holding it at any depth and those holding it with VM above 0.
INSERT INTO summary_tags (site, tag_id, instances, non_empty)
SELECT o.site, o.tag_id, :sign * COUNT(*), :sign * SUM(o.filled)
FROM (
    SELECT COALESCE(i.site, '') AS site, e.tag_id, e.instance_id,
           MAX(CASE WHEN e.vm > 0 THEN 1 ELSE 0 END) AS filled
    FROM elements AS e
    JOIN instances AS i ON i.id = e.instance_id
    WHERE e.instance_id IN :ids
    GROUP BY COALESCE(i.site, ''), e.tag_id, e.instance_id
) AS o
WHERE true
GROUP BY o.site, o.tag_id
ORDER BY o.site, o.tag_id
ON CONFLICT (site, tag_id) DO UPDATE
SET instances = summary_tags.instances + excluded.instances,
    non_empty = summary_tags.non_empty + excluded.non_empty
