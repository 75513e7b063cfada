-- title: Tags that differ between sites
-- description: Pairs of sites that disagree about a tag. 'absent' and 'always empty': the tag
--   has a value in site_instances instances of site but never at other_site (other_instances
--   counts the other site's instances that hold it empty). 'no value in common': both sites
--   fill the tag but share no value (listed once per pair); the examples show each side's
--   smallest value. UIDs, dates and times are left out of the value comparison, since they
--   never repeat across sites; binary values and sequences have no value to compare.
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
sites AS (
    SELECT DISTINCT COALESCE(i.site, '') AS site
    FROM instances AS i
),
site_values AS (
    -- every value with VM above 0 per site and tag, UIDs, dates and times left out
    SELECT DISTINCT v.tag_id, v.site, v.value
    FROM summary_values AS v
),
vals AS (
    SELECT DISTINCT COALESCE(t.private_tag, t.tag_text) AS tag, t.private_creator, v.site, v.value
    FROM site_values AS v
    JOIN tags AS t ON t.id = v.tag_id
),
examples AS (
    SELECT v.tag, v.private_creator, v.site, MIN(v.value) AS example
    FROM vals AS v
    GROUP BY v.tag, v.private_creator, v.site
),
shared AS (
    SELECT DISTINCT a.tag, a.private_creator, a.site, b.site AS other_site
    FROM vals AS a
    JOIN vals AS b ON b.tag = a.tag AND b.private_creator = a.private_creator AND b.value = a.value AND b.site > a.site
),
differences AS (
    SELECT c.tag, c.private_creator, c.site, s.site AS other_site,
           CASE WHEN COALESCE(o.present, 0) = 0 THEN 'absent' ELSE 'always empty' END AS difference,
           c.non_empty AS site_instances,
           COALESCE(o.present, 0) AS other_instances
    FROM counts AS c
    JOIN sites AS s ON s.site <> c.site
    LEFT JOIN counts AS o ON o.tag = c.tag AND o.private_creator = c.private_creator AND o.site = s.site
    WHERE c.non_empty > 0 AND COALESCE(o.non_empty, 0) = 0
    UNION ALL
    SELECT a.tag, a.private_creator, a.site, b.site AS other_site,
           'no value in common' AS difference,
           a.non_empty AS site_instances,
           b.present AS other_instances
    FROM counts AS a
    JOIN examples AS ea ON ea.tag = a.tag AND ea.private_creator = a.private_creator AND ea.site = a.site
    JOIN counts AS b ON b.tag = a.tag AND b.private_creator = a.private_creator AND b.site > a.site
    JOIN examples AS eb ON eb.tag = b.tag AND eb.private_creator = b.private_creator AND eb.site = b.site
    WHERE NOT EXISTS (
        SELECT 1 FROM shared AS sh
        WHERE sh.tag = a.tag AND sh.private_creator = a.private_creator AND sh.site = a.site AND sh.other_site = b.site
    )
),
tag_names AS (
    SELECT COALESCE(t.private_tag, t.tag_text) AS tag,
           t.private_creator,
           MAX(CASE WHEN t.keyword <> '' THEN t.keyword ELSE t.name END) AS name
    FROM tags AS t
    GROUP BY COALESCE(t.private_tag, t.tag_text), t.private_creator
)
SELECT d.tag, n.name, d.private_creator, d.site, d.other_site, d.difference,
       d.site_instances, d.other_instances,
       es.example AS site_example,
       eo.example AS other_example
FROM differences AS d
JOIN tag_names AS n ON n.tag = d.tag AND n.private_creator = d.private_creator
LEFT JOIN examples AS es ON es.tag = d.tag AND es.private_creator = d.private_creator AND es.site = d.site
LEFT JOIN examples AS eo ON eo.tag = d.tag AND eo.private_creator = d.private_creator AND eo.site = d.other_site
ORDER BY d.tag, d.private_creator, d.site, d.other_site, d.difference
