-- title: summary_phi_shown: instances per value that may identify a person
-- description: Adds (:sign = 1) or takes away (:sign = -1) the instances in summary_batch_phi
--   from summary_phi_shown: per site and tag, each value of an element that may identify a
--   person (whatever its category), with the instances holding it. A value longer than 200
--   characters gets one row per instance (keyed by the first element holding it), so the
--   instances still add up.
INSERT INTO summary_phi_shown (site, tag, private_creator, value_key, value, instances)
SELECT h.site, h.tag, h.private_creator, h.value, h.value, :sign * COUNT(DISTINCT h.instance_id)
FROM summary_batch_phi AS h
WHERE h.value IS NOT NULL AND LENGTH(h.value) <= 200
GROUP BY h.site, h.tag, h.private_creator, h.value
UNION ALL
SELECT h.site, h.tag, h.private_creator,
       SUBSTR(h.value, 1, 200) || '#' || CAST(h.instance_id AS TEXT) || '.' || CAST(MIN(h.seq) AS TEXT),
       h.value, :sign
FROM summary_batch_phi AS h
WHERE LENGTH(h.value) > 200
GROUP BY h.site, h.tag, h.private_creator, h.instance_id, h.value
ORDER BY 1, 2, 3, 4
ON CONFLICT (site, tag, private_creator, value_key) DO UPDATE
SET instances = summary_phi_shown.instances + excluded.instances
