-- title: Last build
-- description: The status of the newest build: anything but complete means a build was killed
--   and the next must check every study and series, which only the full build does.
SELECT status FROM builds ORDER BY id DESC LIMIT 1
