-- wrk script for bench/run.py: sends one kind of request and counts every response status.
--
-- Configured through the environment (run.py sets it):
--   BENCH_METHOD   GET or POST
--   BENCH_AUTH     the Authorization header, if any
--   BENCH_BODY     a fixed form-encoded body, if any
--   BENCH_FEED     a file with one form-encoded body per line; each line is sent once
--                  (refresh tokens and authorization codes are single-use)
--   BENCH_EXPECT   the expected status (default 200); any other counts as an error
--   BENCH_THREADS  wrk's -t, so each thread takes its own share of the feed
-- done() prints one line "BENCH_RESULT {json}" that run.py parses.

local method = os.getenv("BENCH_METHOD") or "GET"
local auth = os.getenv("BENCH_AUTH")
local body = os.getenv("BENCH_BODY")
local feed_path = os.getenv("BENCH_FEED")
local expect = tonumber(os.getenv("BENCH_EXPECT") or "200")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")

local headers = {}
if auth and auth ~= "" then headers["Authorization"] = auth end
if (body and body ~= "") or feed_path then
  headers["Content-Type"] = "application/x-www-form-urlencoded"
end

-- Main state: the threads, so done() can collect their counters.
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

-- Per-thread state (globals, so the main state can read them with thread:get).
counts = {}
exhausted = 0
local lines = nil
local pos = 0
local fixed = nil

function init(args)
  if feed_path and feed_path ~= "" then
    lines = {}
    local i = 0
    for line in io.lines(feed_path) do
      -- Every thread takes every nthreads-th line: no line is ever sent twice.
      if i % nthreads == id then lines[#lines + 1] = line end
      i = i + 1
    end
  else
    fixed = wrk.format(method, nil, headers, body)
  end
end

function request()
  if lines == nil then
    return fixed
  end
  pos = pos + 1
  local line = lines[pos]
  if line == nil then
    -- The feed ran out: resend a spent line (the server rejects it) and flag the run.
    exhausted = exhausted + 1
    line = lines[#lines] or ""
  end
  return wrk.format(method, nil, headers, line)
end

function response(status, hdrs, resp_body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local statuses = {}
  local unexpected = 0
  local feed_exhausted = 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts") or {}) do
      statuses[status] = (statuses[status] or 0) + n
      if status ~= expect then unexpected = unexpected + n end
    end
    feed_exhausted = feed_exhausted + (thread:get("exhausted") or 0)
  end
  local parts = {}
  for status, n in pairs(statuses) do
    parts[#parts + 1] = string.format('"%d": %d', status, n)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"statuses": {%s}, "unexpected": %d, "exhausted": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    table.concat(parts, ", "), unexpected, feed_exhausted,
    e.connect, e.read, e.write, e.status, e.timeout))
end
