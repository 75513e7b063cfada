-- title: summary_tags: instances holding each tag per site
-- description: Adds (:sign = 1) or takes away (:sign = -1) the instances :ids from summary_tags:
--   per site and tag, the instances holding it at any depth and those holding it with VM above 0.
INSERT INTO summary_tags (site, tag_id, instances, non_empty)
SELECT COALESCE(i.site, ''), e.tag_id,
       :sign * COUNT(DISTINCT e.instance_id),
       :sign * COUNT(DISTINCT CASE WHEN e.vm > 0 THEN e.instance_id END)
FROM elements AS e
JOIN instances AS i ON i.id = e.instance_id
WHERE e.instance_id IN :ids
GROUP BY COALESCE(i.site, ''), e.tag_id
ORDER BY COALESCE(i.site, ''), e.tag_id
ON CONFLICT (site, tag_id) DO UPDATE
SET instances = summary_tags.instances + excluded.instances,
    non_empty = summary_tags.non_empty + excluded.non_empty
