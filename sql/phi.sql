-- title: Where identifying data may hide
-- description: Per site, every element that may identify a person: those listed in DICOM
--   PS3.15 Table E.1-1 (the Basic Application Level Confidentiality Profile, with its action
--   code), person names, dates and times, UIDs, and private elements that hold text. Only
--   elements with a value count, at any depth (found_in says whether inside sequences).
--   instances and distinct_values count per site and tag; values stay hidden unless
--   show_values is set, then each value gets its own row with value_instances.
-- param show_values: any text (e.g. 1) to list the values themselves [default: '']
-- param site: only this site (exact name) [default: '']
WITH profile AS (
    SELECT t.id AS tag_id, MIN(p.basic_profile) AS action
    FROM tags AS t
    JOIN ps315_attributes AS p ON t.tag_hex LIKE REPLACE(p.tag_hex, 'x', '_')
    WHERE t.private_creator = '' AND (t.tag / 65536) % 2 = 0
    GROUP BY t.id
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
           e.depth,
           e.value
    FROM elements AS e
    -- "+ 0" keeps SQLite from walking the tag_id index and fetching every row out of order
    JOIN tags AS t ON t.id = e.tag_id + 0
    JOIN instances AS i ON i.id = e.instance_id
    LEFT JOIN profile AS p ON p.tag_id = t.id
    WHERE e.vm > 0
      AND (:site = '' OR COALESCE(i.site, '') = :site)
      AND (p.action IS NOT NULL
           OR e.vr IN ('PN', 'DA', 'DT', 'TM', 'UI')
           OR (t.private_tag IS NOT NULL AND e.vr IN ('LO', 'LT', 'SH', 'ST', 'UC', 'UT')))
),
found AS (
    SELECT h.site, h.tag, h.name, h.private_creator, h.category, h.action,
           COUNT(DISTINCT h.instance_id) AS instances,
           COUNT(DISTINCT h.value) AS distinct_values,
           CASE WHEN MAX(h.depth) = 0 THEN 'top level'
                WHEN MIN(h.depth) > 0 THEN 'sequences'
                ELSE 'both'
           END AS found_in
    FROM hits AS h
    GROUP BY h.site, h.tag, h.name, h.private_creator, h.category, h.action
),
shown AS (
    SELECT h.site, h.tag, h.private_creator, h.value, COUNT(DISTINCT h.instance_id) AS value_instances
    FROM hits AS h
    WHERE :show_values <> '' AND h.value IS NOT NULL
    GROUP BY h.site, h.tag, h.private_creator, h.value
)
SELECT f.site, f.tag, f.name, f.private_creator, f.category, f.action, f.found_in,
       f.instances, f.distinct_values, s.value, s.value_instances
FROM found AS f
LEFT JOIN shown AS s ON s.site = f.site AND s.tag = f.tag AND s.private_creator = f.private_creator
ORDER BY f.site, f.tag, f.private_creator, s.value
