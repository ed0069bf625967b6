-- wrk script: POST the body in env WRK_BODY (JSON) to the URL's path and
-- print wrk's count of non-2xx/3xx responses for bench_server.sh.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  io.write(string.format("non2xx: %d\n", summary.errors.status))
end
