-- title: Files that were not indexed, and why
-- description: Files the build did not index, grouped by status (not_dicom, error or skipped)
--   and reason, with how many files share the reason and the first of them by path. Files
--   that were indexed with a warning (such as truncated data) are listed with status warning.
SELECT CASE WHEN f.status = 'indexed' THEN 'warning' ELSE f.status END AS status,
       COALESCE(CASE WHEN f.status = 'indexed' THEN f.warning ELSE f.reason END, '') AS reason,
       COUNT(*) AS files,
       MIN(f.path) AS first_path
FROM files AS f
WHERE f.status <> 'indexed' OR f.warning IS NOT NULL
GROUP BY CASE WHEN f.status = 'indexed' THEN 'warning' ELSE f.status END,
         COALESCE(CASE WHEN f.status = 'indexed' THEN f.warning ELSE f.reason END, '')
ORDER BY files DESC, status, reason
