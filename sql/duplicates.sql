-- title: SOP Instance UIDs in more than one file
-- description: Every SOP Instance UID that more than one indexed file carries, with each of
--   those files, its size and site. Copies of one file have the same size; different sizes
--   under one UID usually mean a UID clash. Files without a SOP Instance UID are left out.
WITH repeated AS (
    SELECT i.sop_instance_uid, COUNT(*) AS files
    FROM instances AS i
    WHERE i.sop_instance_uid <> ''
    GROUP BY i.sop_instance_uid
    HAVING COUNT(*) > 1
)
SELECT r.sop_instance_uid, r.files, COALESCE(i.site, '') AS site, f.size, f.path
FROM repeated AS r
JOIN instances AS i ON i.sop_instance_uid = r.sop_instance_uid
JOIN files AS f ON f.id = i.file_id
ORDER BY r.sop_instance_uid, f.path
