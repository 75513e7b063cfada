-- title: Record a build that found nothing to do
-- description: The row ibash_index/rebuild.py adds for a rerun with nothing changed: the same
--   columns the full build fills (BuildSummary.stored() and how the build was run).
INSERT INTO builds (
    started_at, finished_at, status, tool_version, pydicom_version, roots, options,
    files_seen, indexed, unchanged, not_dicom, errors, skipped, removed, elements, seconds
) VALUES (
    :started_at, :finished_at, :status, :tool_version, :pydicom_version, :roots, :options,
    :files_seen, :indexed, :unchanged, :not_dicom, :errors, :skipped, :removed, :elements, :seconds
)
