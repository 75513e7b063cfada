-- title: MR acquisition parameters per site and series description
-- description: For MR series, grouped by site and series description: TR, TE and TI (ms), flip
--   angle (degrees), field strength (T), slice thickness and pixel spacing (mm), acquisition
--   matrix and sequence name, read at any depth (enhanced MR keeps them in functional groups).
--   A single value means every instance agrees; 'a to b' gives the smallest and largest where
--   they vary (numbers compared as numbers, text as text). Empty: no instance has the tag.
WITH groups AS (
    SELECT COALESCE(i.site, '') AS site,
           COALESCE(se.series_description, '') AS series_description,
           COUNT(DISTINCT se.id) AS series,
           COUNT(*) AS instances
    FROM instances AS i
    JOIN series AS se ON se.id = i.series_id
    WHERE se.modality = 'MR'
    GROUP BY COALESCE(i.site, ''), COALESCE(se.series_description, '')
),
params AS (
    SELECT COALESCE(i.site, '') AS site,
           COALESCE(se.series_description, '') AS series_description,
           t.keyword,
           COUNT(DISTINCT e.value) AS distinct_values,
           MIN(e.value) AS lo_text,
           MAX(e.value) AS hi_text,
           MIN(e.number) AS lo,
           MAX(e.number) AS hi
    FROM tags AS t
    JOIN elements AS e ON e.tag_id = t.id
    JOIN instances AS i ON i.id = e.instance_id
    JOIN series AS se ON se.id = i.series_id
    WHERE t.private_creator = ''
      AND t.keyword IN ('RepetitionTime', 'EchoTime', 'InversionTime', 'FlipAngle', 'MagneticFieldStrength',
                        'SliceThickness', 'PixelSpacing', 'AcquisitionMatrix', 'SequenceName')
      AND se.modality = 'MR'
      AND e.vm > 0
    GROUP BY COALESCE(i.site, ''), COALESCE(se.series_description, ''), t.keyword
),
shown AS (
    SELECT p.site, p.series_description, p.keyword,
           CASE WHEN p.distinct_values = 1 OR p.lo = p.hi THEN p.lo_text
                WHEN p.lo IS NOT NULL THEN CAST(p.lo AS VARCHAR(32)) || ' to ' || CAST(p.hi AS VARCHAR(32))
                ELSE p.lo_text || ' to ' || p.hi_text
           END AS shown
    FROM params AS p
)
SELECT g.site, g.series_description, g.series, g.instances,
       MAX(CASE WHEN s.keyword = 'RepetitionTime' THEN s.shown END) AS tr_ms,
       MAX(CASE WHEN s.keyword = 'EchoTime' THEN s.shown END) AS te_ms,
       MAX(CASE WHEN s.keyword = 'InversionTime' THEN s.shown END) AS ti_ms,
       MAX(CASE WHEN s.keyword = 'FlipAngle' THEN s.shown END) AS flip_deg,
       MAX(CASE WHEN s.keyword = 'MagneticFieldStrength' THEN s.shown END) AS field_t,
       MAX(CASE WHEN s.keyword = 'SliceThickness' THEN s.shown END) AS slice_mm,
       MAX(CASE WHEN s.keyword = 'PixelSpacing' THEN s.shown END) AS pixel_spacing_mm,
       MAX(CASE WHEN s.keyword = 'AcquisitionMatrix' THEN s.shown END) AS matrix,
       MAX(CASE WHEN s.keyword = 'SequenceName' THEN s.shown END) AS sequence_name
FROM groups AS g
LEFT JOIN shown AS s ON s.site = g.site AND s.series_description = g.series_description
GROUP BY g.site, g.series_description, g.series, g.instances
ORDER BY g.site, g.series_description
