-- title: summary_batch_values: the values of the instances :ids, once
-- description: Fills the temporary table summary_batch_values from the elements of the instances
--   :ids, grouped by series, site, tag, VR, level, VM above 0 and value (value, hash): what
--   summary_values and summary_series_values take their counts from. A value longer than 200
--   characters keeps its instance and seq (long_id), so it is never merged with another.
CREATE TEMPORARY TABLE IF NOT EXISTS summary_batch_values (
    series_id INTEGER NOT NULL,
    site TEXT NOT NULL,
    tag_id INTEGER NOT NULL,
    vr TEXT NOT NULL,
    top INTEGER NOT NULL,
    filled INTEGER NOT NULL,
    value TEXT,
    hash TEXT,
    long_id TEXT NOT NULL,
    number FLOAT,
    elements INTEGER NOT NULL
);
DELETE FROM summary_batch_values;
INSERT INTO summary_batch_values (series_id, site, tag_id, vr, top, filled, value, hash, long_id, number, elements)
SELECT v.series_id, v.site, v.tag_id, v.vr, v.top, v.filled, v.value, v.hash, v.long_id, MIN(v.number), COUNT(*)
FROM (
    SELECT i.series_id, COALESCE(i.site, '') AS site, e.tag_id, e.vr,
           CASE WHEN e.depth = 0 THEN 1 ELSE 0 END AS top,
           CASE WHEN e.vm > 0 THEN 1 ELSE 0 END AS filled,
           e.value, e.hash, e.number,
           CASE WHEN LENGTH(COALESCE(e.value, e.hash, '')) <= 200 THEN ''
                ELSE CAST(e.instance_id AS TEXT) || '.' || CAST(e.seq AS TEXT)
           END AS long_id
    FROM elements AS e
    JOIN instances AS i ON i.id = e.instance_id
    WHERE e.instance_id IN :ids
) AS v
GROUP BY v.series_id, v.site, v.tag_id, v.vr, v.top, v.filled, v.value, v.hash, v.long_id
