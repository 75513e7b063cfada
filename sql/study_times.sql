-- title: Study, series and acquisition times
-- description: Per site and session, each series with the study date and time, the series date
--   and time, and the first and last acquisition time of its instances (DICOM DA/TM text,
--   YYYYMMDD and HHMMSS.ffffff), in the order the series were acquired.
SELECT COALESCE(i.site, '') AS site,
       COALESCE(NULLIF(st.accession_number, ''), NULLIF(st.dicom_study_id, ''), st.study_instance_uid) AS session,
       st.study_date,
       st.study_time,
       se.series_number,
       se.series_description,
       se.series_date,
       se.series_time,
       MIN(NULLIF(i.acquisition_time, '')) AS first_acquisition_time,
       MAX(NULLIF(i.acquisition_time, '')) AS last_acquisition_time,
       COUNT(*) AS instances
FROM instances AS i
JOIN series AS se ON se.id = i.series_id
JOIN studies AS st ON st.id = se.study_id
GROUP BY COALESCE(i.site, ''), st.id, st.accession_number, st.dicom_study_id, st.study_instance_uid,
         st.study_date, st.study_time, se.id, se.series_number, se.series_description, se.series_date,
         se.series_time
ORDER BY site, session, st.study_date, se.series_date, se.series_time, se.series_number
