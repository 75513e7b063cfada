-- title: summary_phi_shown: add what the workers counted
-- description: Adds one row per site, tag and value that may identify a person, counted by the
--   workers as they read (ibash_index/tally.py); the same sums ../summary_phi_shown.sql adds.
INSERT INTO summary_phi_shown (site, tag, private_creator, value_key, value, instances)
VALUES (:site, :tag, :private_creator, :value_key, :value, :instances)
ON CONFLICT (site, tag, private_creator, value_key) DO UPDATE
SET instances = summary_phi_shown.instances + excluded.instances
