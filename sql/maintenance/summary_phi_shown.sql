-- title: summary_phi_shown: instances per value that may identify a person
-- description: Adds (:sign = 1) or takes away (:sign = -1) the instances :ids from
--   summary_phi_shown: per site and tag, each value of an element that may identify a person
--   (whatever its category), with the instances holding it. A long value gets one row per
--   instance (keyed by the first element holding it), so the instances still add up.
WITH profile AS (
    -- tags listed in PS3.15 Table E.1-1 and their action (as phi.sql used to find them with LIKE):
    -- exact entries by the table's key, the few with xx wildcards by pattern
    SELECT m.tag_id, MIN(m.action) AS action
    FROM (
        SELECT t.id AS tag_id, p.basic_profile AS action
        FROM tags AS t
        JOIN ps315_attributes AS p ON p.tag = t.tag_text
        WHERE t.private_creator = '' AND (t.tag / 65536) % 2 = 0
        UNION ALL
        SELECT t.id AS tag_id, p.basic_profile AS action
        FROM tags AS t
        JOIN ps315_attributes AS p ON t.tag_hex LIKE REPLACE(p.tag_hex, 'x', '_')
        WHERE t.private_creator = '' AND (t.tag / 65536) % 2 = 0 AND p.tag_hex LIKE '%x%'
    ) AS m
    GROUP BY m.tag_id
),
hits AS (
    SELECT COALESCE(i.site, '') AS site,
           COALESCE(t.private_tag, t.tag_text) AS tag,
           CASE WHEN t.keyword <> '' THEN t.keyword ELSE t.name END AS name,
           t.private_creator,
           CASE WHEN p.action IS NOT NULL THEN 'PS3.15 E.1-1'
                WHEN e.vr = 'PN' THEN 'person name'
                WHEN e.vr IN ('DA', 'DT', 'TM') THEN 'date or time'
                WHEN e.vr = 'UI' THEN 'UID'
                ELSE 'private text'
           END AS category,
           COALESCE(p.action, '') AS action,
           e.instance_id,
           e.seq,
           e.depth,
           e.value
    FROM elements AS e
    JOIN tags AS t ON t.id = e.tag_id
    JOIN instances AS i ON i.id = e.instance_id
    LEFT JOIN profile AS p ON p.tag_id = t.id
    WHERE e.instance_id IN :ids
      AND e.vm > 0
      AND (p.action IS NOT NULL
           OR e.vr IN ('PN', 'DA', 'DT', 'TM', 'UI')
           OR (t.private_tag IS NOT NULL AND e.vr IN ('LO', 'LT', 'SH', 'ST', 'UC', 'UT')))
)
INSERT INTO summary_phi_shown (site, tag, private_creator, value_key, value, instances)
SELECT v.site, v.tag, v.private_creator, v.value_key, v.value, :sign * COUNT(*)
FROM (
    SELECT h.site, h.tag, h.private_creator, h.value,
           CASE WHEN LENGTH(h.value) <= 200 THEN h.value
                ELSE SUBSTR(h.value, 1, 200) || '#' || CAST(h.instance_id AS TEXT) || '.' || CAST(MIN(h.seq) AS TEXT)
           END AS value_key
    FROM hits AS h
    WHERE h.value IS NOT NULL
    GROUP BY h.site, h.tag, h.private_creator, h.instance_id, h.value
) AS v
WHERE true
GROUP BY v.site, v.tag, v.private_creator, v.value_key, v.value
ORDER BY v.site, v.tag, v.private_creator, v.value_key
ON CONFLICT (site, tag, private_creator, value_key) DO UPDATE
SET instances = summary_phi_shown.instances + excluded.instances
