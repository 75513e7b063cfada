-- title: summary_phi_values: add what the workers counted
-- description: Adds one row per phi group and value, counted by the workers as they read
--   (ibash_index/tally.py); the same sums ../summary_phi_values.sql adds.
INSERT INTO summary_phi_values (site, tag, name, private_creator, category, action, value_key, value, elements)
VALUES (:site, :tag, :name, :private_creator, :category, :action, :value_key, :value, :elements)
ON CONFLICT (site, tag, name, private_creator, category, action, value_key) DO UPDATE
SET elements = summary_phi_values.elements + excluded.elements
