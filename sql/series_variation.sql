-- title: Tags whose value changes within a series
-- description: For each series, the top-level tags that do not hold the same value in every
--   instance: distinct_values counts the different values (binary values by their hash, an
--   empty value counts as one), instances how many of the series' instances hold the tag at all
--   (fewer than series_instances: it is missing from some). smallest_value and largest_value
--   show the range, compared as numbers where every value is one. Tags that are the same
--   everywhere in the series are not listed.
WITH series_size AS (
    SELECT i.series_id, MIN(COALESCE(i.site, '')) AS site, COUNT(*) AS instances
    FROM instances AS i
    GROUP BY i.series_id
),
top_level AS (
    -- summary_series_values: per series, top-level tag, VR and COALESCE(value, hash, ''), its elements
    SELECT v.series_id, v.tag_id, v.value, MIN(v.number) AS number, CAST(SUM(v.elements) AS INTEGER) AS instances
    FROM summary_series_values AS v
    GROUP BY v.series_id, v.tag_id, v.value
),
per_tag AS (
    SELECT v.series_id, v.tag_id,
           COUNT(*) AS distinct_values,
           COUNT(v.number) AS numeric_values,
           CAST(SUM(v.instances) AS INTEGER) AS instances,
           MIN(v.value) AS lo_text,
           MAX(v.value) AS hi_text,
           MIN(v.number) AS lo,
           MAX(v.number) AS hi
    FROM top_level AS v
    GROUP BY v.series_id, v.tag_id
),
varying AS (
    SELECT p.*, z.site, z.instances AS series_instances
    FROM per_tag AS p
    JOIN series_size AS z ON z.series_id = p.series_id
    WHERE p.distinct_values > 1 OR p.instances < z.instances
)
SELECT v.site,
       COALESCE(NULLIF(st.accession_number, ''), NULLIF(st.dicom_study_id, ''), st.study_instance_uid) AS session,
       se.series_number,
       se.series_description,
       COALESCE(t.private_tag, t.tag_text) AS tag,
       CASE WHEN t.keyword <> '' THEN t.keyword ELSE t.name END AS name,
       t.private_creator,
       v.distinct_values,
       v.instances,
       v.series_instances,
       CASE WHEN v.numeric_values = v.distinct_values
            THEN (SELECT MIN(x.value) FROM top_level AS x
                  WHERE x.series_id = v.series_id AND x.tag_id = v.tag_id AND x.number = v.lo)
            ELSE v.lo_text
       END AS smallest_value,
       CASE WHEN v.numeric_values = v.distinct_values
            THEN (SELECT MAX(x.value) FROM top_level AS x
                  WHERE x.series_id = v.series_id AND x.tag_id = v.tag_id AND x.number = v.hi)
            ELSE v.hi_text
       END AS largest_value
FROM varying AS v
JOIN tags AS t ON t.id = v.tag_id
JOIN series AS se ON se.id = v.series_id
JOIN studies AS st ON st.id = se.study_id
ORDER BY v.site, session, se.series_number, se.series_description, tag, t.private_creator
