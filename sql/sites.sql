-- title: Sites at a glance
-- description: One row per site and scanner (modality, manufacturer, model, software versions
--   and field strength). The first columns count the whole site: sessions (studies), patients,
--   series, instances and the first and last study date; scanner_series and scanner_instances
--   count what that scanner contributed. A site with two scanners has two rows.
WITH site_totals AS (
    SELECT COALESCE(i.site, '') AS site,
           COUNT(DISTINCT se.study_id) AS sessions,
           COUNT(DISTINCT st.patient_id) AS patients,
           COUNT(DISTINCT i.series_id) AS series,
           COUNT(*) AS instances,
           MIN(NULLIF(st.study_date, '')) AS first_study_date,
           MAX(NULLIF(st.study_date, '')) AS last_study_date
    FROM instances AS i
    JOIN series AS se ON se.id = i.series_id
    JOIN studies AS st ON st.id = se.study_id
    GROUP BY COALESCE(i.site, '')
),
scanners AS (
    SELECT COALESCE(i.site, '') AS site,
           se.modality,
           se.manufacturer,
           se.manufacturer_model_name AS model,
           se.software_versions,
           se.magnetic_field_strength AS field_strength,
           COUNT(DISTINCT i.series_id) AS scanner_series,
           COUNT(*) AS scanner_instances
    FROM instances AS i
    JOIN series AS se ON se.id = i.series_id
    GROUP BY COALESCE(i.site, ''), se.modality, se.manufacturer, se.manufacturer_model_name,
             se.software_versions, se.magnetic_field_strength
)
SELECT t.site, t.sessions, t.patients, t.series, t.instances, t.first_study_date, t.last_study_date,
       s.modality, s.manufacturer, s.model, s.software_versions, s.field_strength,
       s.scanner_series, s.scanner_instances
FROM site_totals AS t
JOIN scanners AS s ON s.site = t.site
ORDER BY t.site, s.modality, s.manufacturer, s.model, s.software_versions, s.field_strength
