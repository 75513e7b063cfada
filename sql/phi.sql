-- title: Where identifying data may hide
-- description: Per site, every element that may identify a person: those listed in DICOM
--   PS3.15 Table E.1-1 (the Basic Application Level Confidentiality Profile, with its action
--   code), person names, dates and times, UIDs, and private elements that hold text. Only
--   elements with a value count, at any depth (found_in says whether inside sequences).
--   instances and distinct_values count per site and tag; values stay hidden unless
--   show_values is 1, yes or true, then each value gets its own row with value_instances.
-- param show_values: 1, yes or true to list the values themselves (anything else hides them) [default: '']
-- param site: only this site (exact name) [default: '']
WITH distinct_values AS (
    -- The build keeps summary_phi_* (see sql/maintenance) with the elements that may identify a
    -- person, at every depth: VM above 0 and listed in PS3.15 E.1-1, or a PN, DA, DT, TM or UI,
    -- or a private LO, LT, SH, ST, UC or UT.
    SELECT v.site, v.tag, v.name, v.private_creator, v.category, v.action, COUNT(DISTINCT v.value) AS distinct_values
    FROM summary_phi_values AS v
    WHERE (:site = '' OR v.site = :site)
    GROUP BY v.site, v.tag, v.name, v.private_creator, v.category, v.action
),
found AS (
    SELECT g.site, g.tag, g.name, g.private_creator, g.category, g.action,
           g.instances,
           COALESCE(d.distinct_values, 0) AS distinct_values,
           CASE WHEN g.nested_elements = 0 THEN 'top level'
                WHEN g.top_elements = 0 THEN 'sequences'
                ELSE 'both'
           END AS found_in
    FROM summary_phi_groups AS g
    LEFT JOIN distinct_values AS d
      ON d.site = g.site AND d.tag = g.tag AND d.name = g.name AND d.private_creator = g.private_creator
     AND d.category = g.category AND d.action = g.action
    WHERE (:site = '' OR g.site = :site)
),
shown AS (
    SELECT s.site, s.tag, s.private_creator, s.value, CAST(SUM(s.instances) AS INTEGER) AS value_instances
    FROM summary_phi_shown AS s
    WHERE LOWER(:show_values) IN ('1', 'yes', 'true') AND (:site = '' OR s.site = :site)
    GROUP BY s.site, s.tag, s.private_creator, s.value
)
SELECT f.site, f.tag, f.name, f.private_creator, f.category, f.action, f.found_in,
       f.instances, f.distinct_values, s.value, s.value_instances
FROM found AS f
LEFT JOIN shown AS s ON s.site = f.site AND s.tag = f.tag AND s.private_creator = f.private_creator
ORDER BY f.site, f.tag, f.private_creator, s.value
