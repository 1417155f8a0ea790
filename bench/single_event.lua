-- wrk script: POST /v1/events with a fresh event id per request; counts every non-202.
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  failures = 0
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TIERSTREAM_BENCH_KEY")
  wrk.headers["Content-Type"] = "application/cloudevents+json"
end

function request()
  counter = counter + 1
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
