-- title: Which tags each site fills
-- description: For every tag seen (public by tag and keyword, private by (GGGG,xxEE) and private
--   creator), one row per site: how many of the site's instances hold the tag at any depth
--   (present) and how many hold it with a value (non_empty, VM above 0). A tag present but not
--   non_empty at one site is one that site leaves empty; present = 0 means the site never
--   sends it. Private elements found in several blocks are added up.
WITH occurrences AS (
    SELECT e.tag_id, e.instance_id
    FROM elements AS e
    GROUP BY e.tag_id, e.instance_id
),
blank AS (
    -- instances where every occurrence of the tag is empty
    SELECT e.tag_id, e.instance_id
    FROM elements AS e
    WHERE e.vm = 0
    GROUP BY e.tag_id, e.instance_id
    HAVING COUNT(*) = (SELECT COUNT(*) FROM elements AS x WHERE x.tag_id = e.tag_id AND x.instance_id = e.instance_id)
),
present AS (
    SELECT o.tag_id, COALESCE(i.site, '') AS site, COUNT(*) AS instances
    FROM occurrences AS o
    JOIN instances AS i ON i.id = o.instance_id
    GROUP BY o.tag_id, COALESCE(i.site, '')
),
blank_sites AS (
    SELECT b.tag_id, COALESCE(i.site, '') AS site, COUNT(*) AS instances
    FROM blank AS b
    JOIN instances AS i ON i.id = b.instance_id
    GROUP BY b.tag_id, COALESCE(i.site, '')
),
counts AS (
    SELECT COALESCE(t.private_tag, t.tag_text) AS tag,
           t.private_creator,
           p.site,
           CAST(SUM(p.instances) AS INTEGER) AS present,
           CAST(SUM(p.instances - COALESCE(b.instances, 0)) AS INTEGER) AS non_empty
    FROM present AS p
    JOIN tags AS t ON t.id = p.tag_id
    LEFT JOIN blank_sites AS b ON b.tag_id = p.tag_id AND b.site = p.site
    GROUP BY COALESCE(t.private_tag, t.tag_text), t.private_creator, p.site
),
tag_names AS (
    SELECT COALESCE(t.private_tag, t.tag_text) AS tag,
           t.private_creator,
           MAX(CASE WHEN t.keyword <> '' THEN t.keyword ELSE t.name END) AS name
    FROM tags AS t
    WHERE t.id IN (SELECT p.tag_id FROM present AS p)
    GROUP BY COALESCE(t.private_tag, t.tag_text), t.private_creator
),
sites AS (
    SELECT COALESCE(i.site, '') AS site, COUNT(*) AS instances
    FROM instances AS i
    GROUP BY COALESCE(i.site, '')
)
SELECT n.tag, n.name, n.private_creator, s.site, s.instances,
       COALESCE(c.present, 0) AS present,
       COALESCE(c.non_empty, 0) AS non_empty
FROM tag_names AS n
CROSS JOIN sites AS s
LEFT JOIN counts AS c ON c.tag = n.tag AND c.private_creator = n.private_creator AND c.site = s.site
ORDER BY n.tag, n.private_creator, s.site
