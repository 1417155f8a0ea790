-- wrk script for ingest: POSTs events and counts every answer that is not 202.
-- With TIERSTREAM_BENCH_BODIES (a file, one JSON body per line) it cycles through those
-- bodies (batches); without, it builds one event per request with a fresh id.
-- TIERSTREAM_BENCH_KEY: the API key; TIERSTREAM_BENCH_CONTENT_TYPE: the media type.
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  failures = 0
  counter = 0
  bodies = {}
  local file = os.getenv("TIERSTREAM_BENCH_BODIES")
  if file then
    for line in io.lines(file) do table.insert(bodies, line) end
  end
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TIERSTREAM_BENCH_KEY")
  wrk.headers["Content-Type"] = os.getenv("TIERSTREAM_BENCH_CONTENT_TYPE")
end

function request()
  counter = counter + 1
  if #bodies > 0 then
    return wrk.format(nil, nil, nil, bodies[(counter - 1) % #bodies + 1])
  end
  local body = string.format(
    '{"specversion":"1.0","id":"wrk-%d-%d","source":"erp/bench","type":"tierstream.transaction",' ..
    '"subject":"C-%05d","time":"2026-11-20T10:00:00+08:00","data":{"kind":"purchase",' ..
    '"amount":"%d.50","currency":"CNY","order_id":"SO-%d"}}',
    tid, counter, counter % 50000, counter % 9973 + 1, counter)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status ~= 202 then failures = failures + 1 end
end

function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do failed = failed + thread:get("failures") end
  io.write(string.format("RESULT requests=%d seconds=%.3f failures=%d p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, summary.duration / 1e6, failed,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
