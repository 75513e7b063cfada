-- title: Which tags each site fills
-- description: For every tag seen (public by tag and keyword, private by (GGGG,xxEE) and private
--   creator), one row per site: how many of the site's instances hold the tag at any depth
--   (present) and how many hold it with a value (non_empty, VM above 0). A tag present but not
--   non_empty at one site is one that site leaves empty; present = 0 means the site never
--   sends it. Private elements found in several blocks are added up.
WITH counts AS (
    -- summary_tags holds, per site and tag, the instances holding it at all and with a value
    SELECT COALESCE(t.private_tag, t.tag_text) AS tag,
           t.private_creator,
           c.site,
           CAST(SUM(c.instances) AS INTEGER) AS present,
           CAST(SUM(c.non_empty) AS INTEGER) AS non_empty
    FROM summary_tags AS c
    JOIN tags AS t ON t.id = c.tag_id
    GROUP BY COALESCE(t.private_tag, t.tag_text), t.private_creator, c.site
),
tag_names AS (
    SELECT COALESCE(t.private_tag, t.tag_text) AS tag,
           t.private_creator,
           MAX(CASE WHEN t.keyword <> '' THEN t.keyword ELSE t.name END) AS name
    FROM tags AS t
    WHERE t.id IN (SELECT c.tag_id FROM summary_tags AS c)
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
