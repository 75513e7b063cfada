-- title: summary_batch_phi: the elements of the instances :ids that may identify a person
-- description: Fills the temporary table summary_batch_phi with the elements of the instances
--   :ids that phi.sql lists: VM above 0 and listed in PS3.15 Table E.1-1, or a PN, DA, DT, TM or
--   UI, or a private LO, LT, SH, ST, UC or UT; with the site, tag, name, category and action
--   phi.sql groups them by. summary_phi_* take their counts from it.
CREATE TEMPORARY TABLE IF NOT EXISTS summary_batch_phi (
    site TEXT NOT NULL,
    tag TEXT NOT NULL,
    name TEXT NOT NULL,
    private_creator TEXT NOT NULL,
    category TEXT NOT NULL,
    action TEXT NOT NULL,
    instance_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    depth INTEGER NOT NULL,
    value TEXT
);
DELETE FROM summary_batch_phi;
INSERT INTO summary_batch_phi (site, tag, name, private_creator, category, action, instance_id, seq, depth, value)
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
)
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
