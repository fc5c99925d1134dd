-- Send every request of a file exactly once through wrk; bench/wrk.py drives it:
--   wrk -t T -c C -d MAX -s each.lua URL -- REQUESTS_FILE T [HOST [PACE_MS]]
-- Each line of REQUESTS_FILE is "METHOD<TAB>PATH" or "METHOD<TAB>PATH<TAB>HEADER<TAB>VALUE".
-- Thread i sends lines i, i+T, i+2T...; it prints "START i" before its first request and
-- "DONE i" when all its requests are answered (bench/wrk.py then sends SIGINT: wrk's main
-- thread would otherwise sleep for the whole -d). A connection with nothing left to send
-- asks for /wrk-idle, which Varnish answers itself with a 204, and is not counted.
-- PACE_MS > 0: each connection waits that long before each request (a steady rate).
-- done() prints "TALLY <X-Cache>/<X-Origin-Fetch or X-Purged-Count>/<status> N".
local threads, count = {}, 0

function setup(thread)
  thread:set("id", count)
  count = count + 1
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(args[2])
  if args[3] and args[3] ~= "" then wrk.headers["Host"] = args[3] end
  pace = tonumber(args[4] or "0") or 0
  mine, nxt, answered, tally, started = {}, 1, 0, {}, false
  local i = 0
  for line in io.lines(args[1]) do
    if line ~= "" then
      if i % nthreads == id then
        local method, path, name, value = line:match("^([^\t]+)\t([^\t]+)\t?([^\t]*)\t?(.*)$")
        local headers = {}
        if name ~= "" then headers[name] = value end
        mine[#mine + 1] = wrk.format(method, path, headers)
      end
      i = i + 1
    end
  end
  idle = wrk.format("GET", "/wrk-idle")
  -- wrk calls request() once on thread 0 to check the script and never sends that request
  skip = (id == 0)
  if #mine == 0 then say("DONE") end
end

function say(what)
  io.write(what .. " " .. id .. "\n")
  io.flush()
end

function delay()
  if nxt > #mine then return 60000 end
  return pace
end

function request()
  if skip then
    skip = false
    return idle
  end
  if nxt > #mine then return idle end
  if not started then
    started = true
    say("START")
  end
  nxt = nxt + 1
  return mine[nxt - 1]
end

function response(status, headers, body)
  if status == 204 then return end
  answered = answered + 1
  local cache = headers["X-Cache"] or "-"
  local number = headers["X-Origin-Fetch"] or headers["X-Purged-Count"] or "-"
  local key = cache .. "/" .. number .. "/" .. status
  tally[key] = (tally[key] or 0) + 1
  if answered == #mine then say("DONE") end
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for key, n in pairs(thread:get("tally")) do total[key] = (total[key] or 0) + n end
  end
  for key, n in pairs(total) do io.write("TALLY " .. key .. " " .. n .. "\n") end
end
