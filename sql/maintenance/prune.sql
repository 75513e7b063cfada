-- title: Drop summary rows counted down to nothing
-- description: Run after the instances were taken away (:sign = -1); each summary_* table has a
--   partial index holding only its rows with a count of 0, so this reads nothing else.
DELETE FROM summary_tags WHERE instances = 0;
DELETE FROM summary_values WHERE elements = 0;
DELETE FROM summary_series_values WHERE elements = 0;
DELETE FROM summary_phi_groups WHERE instances = 0;
DELETE FROM summary_phi_values WHERE elements = 0;
DELETE FROM summary_phi_shown WHERE instances = 0;
DELETE FROM summary_private WHERE elements = 0
