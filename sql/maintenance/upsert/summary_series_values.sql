-- title: summary_series_values: add what the workers counted
-- description: Adds one row per series, top-level tag, VR and value, counted by the workers as
--   they read (ibash_index/tally.py); the same sums ../summary_series_values.sql adds.
INSERT INTO summary_series_values (series_id, tag_id, vr, value_key, value, number, elements)
VALUES (:series_id, :tag_id, :vr, :value_key, :value, :number, :elements)
ON CONFLICT (series_id, tag_id, vr, value_key) DO UPDATE
SET elements = summary_series_values.elements + excluded.elements,
    number = COALESCE(summary_series_values.number, excluded.number)
