-- title: Sessions and their series
-- description: Every session (DICOM study) and its series, like XNAT's scan list: series
--   number, description, protocol, modality and instance count, with the site. The session
--   label is the Accession Number, else the Study ID, else the Study Instance UID.
SELECT COALESCE(i.site, '') AS site,
       COALESCE(NULLIF(st.accession_number, ''), NULLIF(st.dicom_study_id, ''), st.study_instance_uid) AS session,
       st.patient_id,
       st.study_date,
       se.series_number,
       se.series_description,
       se.protocol_name,
       se.modality,
       COUNT(*) AS instances
FROM instances AS i
JOIN series AS se ON se.id = i.series_id
JOIN studies AS st ON st.id = se.study_id
GROUP BY COALESCE(i.site, ''), st.id, st.accession_number, st.dicom_study_id, st.study_instance_uid,
         st.patient_id, st.study_date, se.id, se.series_number, se.series_description, se.protocol_name,
         se.modality
ORDER BY site, session, st.study_date, se.series_number, se.series_description
