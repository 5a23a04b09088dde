--- The parity table: answers to one GET (Kontent get_environment), one per
-- rule of RFC 9112 (and RFC 9110 where it says how a client reads a
-- response), each with what a client must make of it. The hostile server
-- (spec/support/hostile_server.lua, `h:case(name)`) sends `bytes` and
-- closes the connection; spec/http1_spec.lua runs every case through
-- libcurl and spec/nginx/nginx_test.lua through libcurl and cosockets,
-- asserting the expectation and that both transports agree on `kind`,
-- `code`, `retryable`, `maybe_applied`, `attempts`, status and body.
--
-- `ok`: the call succeeds with the environment in GOOD (with `empty`: with
-- `true`, the result of a body-less answer). `err`: the fields the error
-- must have. `why`: the rule.
-- Where libcurl 7.88 is stricter than the RFC asks, the rule says so: the
-- cosocket reader (lua/envclone/http1.lua) follows libcurl there.
-- @module spec.support.http1_cases
local M = {}

M.ENV = "8d20758c-d74c-4f59-ae04-ee928c0816b7"
M.GOOD = '{"id":"8d20758c-d74c-4f59-ae04-ee928c0816b7","name":"Sample project",'
  .. '"environment":"Production","is_production":true}'

local B = M.GOOD
local N = #B
local A1, A2 = B:sub(1, 30), B:sub(31)

-- a head (lines joined with CRLF) and a body
local function msg(head, body)
  return head .. "\r\n\r\n" .. (body or B)
end
local function chunk(s) return string.format("%x\r\n%s\r\n", #s, s) end
local CHUNKED = chunk(A1) .. chunk(A2) .. "0\r\n\r\n"

local PROTOCOL = { kind = "transport", code = "protocol", retryable = false }
local RECV = { kind = "transport", code = "recv", retryable = true }
local TOO_LARGE = { kind = "transport", code = "too_large", retryable = false }

M.cases = {
  -- §4 status line
  { name = "status_plain", why = "§4: HTTP-version SP status-code SP reason-phrase",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length: " .. N), ok = true },
  { name = "status_no_reason", why = "§4: the reason phrase may be absent (and is ignored)",
    bytes = msg("HTTP/1.1 200\r\nContent-Length: " .. N), ok = true },
  { name = "status_empty_reason", why = "§4: an empty reason phrase after the SP",
    bytes = msg("HTTP/1.1 200 \r\nContent-Length: " .. N), ok = true },
  { name = "status_http10", why = "§2.3: an HTTP/1.0 answer is read as such",
    bytes = msg("HTTP/1.0 200 OK\r\nContent-Length: " .. N), ok = true },
  { name = "status_http12", why = "§2.3: minor versions above 1.1 (libcurl refuses them)",
    bytes = msg("HTTP/1.2 200 OK\r\nContent-Length: " .. N), err = PROTOCOL },
  { name = "status_http2_text", why = "§2.3: HTTP/2 is never a text status line",
    bytes = msg("HTTP/2 200\r\nContent-Length: " .. N), err = PROTOCOL },
  { name = "status_lower_case", why = "§2.3: HTTP-name is case-sensitive",
    bytes = msg("http/1.1 200 OK\r\nContent-Length: " .. N), err = PROTOCOL },
  { name = "status_two_digits", why = "§4: status-code is 3DIGIT",
    bytes = msg("HTTP/1.1 20 OK\r\nContent-Length: " .. N), err = PROTOCOL },
  { name = "status_glued_reason", why = "§4: SP between status-code and reason-phrase",
    bytes = msg("HTTP/1.1 200OK\r\nContent-Length: " .. N), err = PROTOCOL },
  { name = "status_two_spaces", why = "§4: exactly one SP after the version",
    bytes = msg("HTTP/1.1  200 OK\r\nContent-Length: " .. N), err = PROTOCOL },
  { name = "status_600", why = "RFC 9110 §15: an unknown 3-digit code is passed on as an HTTP error",
    bytes = msg("HTTP/1.1 600 Odd\r\nContent-Length: " .. N),
    err = { kind = "http", status = 600, retryable = false } },
  { name = "leading_empty_line", why = "§2.2: only servers skip empty lines before the start line",
    bytes = "\r\n" .. msg("HTTP/1.1 200 OK\r\nContent-Length: " .. N), err = PROTOCOL },
  { name = "not_http", why = "§4: no status line at all",
    bytes = "\0\1\2 this is not HTTP \255\254\r\n\r\n", err = PROTOCOL },

  -- §2.2 line ends, §5 field lines
  { name = "bare_lf", why = "§2.2: a recipient may take a bare LF as the line end",
    bytes = "HTTP/1.1 200 OK\nContent-Length: " .. N .. "\n\n" .. B, ok = true },
  { name = "mixed_line_ends", why = "§2.2: CRLF and LF mixed",
    bytes = "HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: " .. N .. "\r\n\n" .. B, ok = true },
  { name = "bare_cr", why = "§2.2: a bare CR makes the element invalid",
    bytes = msg("HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: " .. N), err = PROTOCOL },
  { name = "nul_in_value", why = "RFC 9110 §5.5: NUL in a field value: reject",
    bytes = msg("HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: " .. N), err = PROTOCOL },
  { name = "names_any_case", why = "§5: field names are case-insensitive",
    bytes = msg("HTTP/1.1 200 OK\r\ncONTENT-lENGTH: " .. N), ok = true },
  { name = "ows_around_value", why = "§5: OWS before and after the value is not part of it",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length:\t " .. N .. " \t"), ok = true },
  { name = "no_ows", why = "§5: OWS is optional",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length:" .. N), ok = true },
  { name = "empty_value", why = "§5: a field value may be empty",
    bytes = msg("HTTP/1.1 200 OK\r\nX-Empty:\r\nContent-Length: " .. N), ok = true },
  { name = "obs_text_value", why = "RFC 9110 §5.5: obs-text in a value",
    bytes = msg("HTTP/1.1 200 OK\r\nX-A: caf\233\r\nContent-Length: " .. N), ok = true },
  { name = "space_before_colon", why = "§5.1: no whitespace between field name and colon",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length : " .. N), err = PROTOCOL },
  { name = "no_colon", why = "§5: a field line is name ':' value",
    bytes = msg("HTTP/1.1 200 OK\r\nJunk line\r\nContent-Length: " .. N), err = PROTOCOL },
  { name = "empty_name", why = "§5.1: field-name is a token (1 or more tchar)",
    bytes = msg("HTTP/1.1 200 OK\r\n: v\r\nContent-Length: " .. N), err = PROTOCOL },
  { name = "bad_name", why = "§5.1: field-name is a token",
    bytes = msg("HTTP/1.1 200 OK\r\nX(y): v\r\nContent-Length: " .. N), err = PROTOCOL },
  { name = "obs_fold", why = "§5.2: a user agent replaces obs-fold by SP",
    bytes = msg("HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: " .. N), ok = true },
  { name = "obs_fold_retry_after", why = "§5.2: a folded Retry-After reads as its unfolded value",
    bytes = msg("HTTP/1.1 429 Too Many Requests\r\nRetry-After:\r\n 0\r\nX-Request-Id: req\r\n\tfolded\r\n"
      .. "Content-Length: " .. N),
    err = { kind = "http", status = 429, retryable = true, retry_after = 0, request_id = "req folded" } },
  { name = "fold_first_line", why = "§2.2: whitespace before the first field: reject",
    bytes = msg("HTTP/1.1 200 OK\r\n X-A: 1\r\nContent-Length: " .. N), err = PROTOCOL },
  { name = "fold_content_length", why = "§5.2 with libcurl: a folded framing field is refused",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length:\r\n " .. N), err = PROTOCOL },
  { name = "fold_transfer_encoding", why = "§5.2 with libcurl: a folded framing field is refused",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n chunked", CHUNKED), err = PROTOCOL },

  -- §6.3 message length: Content-Length
  { name = "cl_exact", why = "§6.3 rule 6: Content-Length gives the body length",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length: " .. N), ok = true },
  { name = "cl_leading_zeros", why = "§8.6 of RFC 9110: 1*DIGIT, leading zeros allowed",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length: 00000000000000000000" .. N), ok = true },
  { name = "cl_same_list", why = "§6.3: a list of identical values is that value",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length: " .. N .. ", " .. N), ok = true },
  { name = "cl_same_twice", why = "§6.3: repeated identical fields are that value",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length: " .. N .. "\r\nContent-Length: " .. N), ok = true },
  { name = "cl_differ_twice", why = "§6.3 rule 5: differing values are an unrecoverable error",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length: " .. N .. "\r\nContent-Length: " .. (N + 5)),
    err = PROTOCOL },
  { name = "cl_differ_twice_short_first", why = "§6.3 rule 5: whichever comes first",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length: " .. (N - 5) .. "\r\nContent-Length: " .. N), err = PROTOCOL },
  { name = "cl_differ_list", why = "§6.3 rule 5: differing values in one list",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length: " .. N .. ", " .. (N + 5)), err = PROTOCOL },
  { name = "cl_not_number", why = "§6.3 rule 5: an invalid Content-Length",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length: abc"), err = PROTOCOL },
  { name = "cl_negative", why = "§6.3 rule 5: an invalid Content-Length",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length: -5"), err = PROTOCOL },
  { name = "cl_plus_sign", why = "§6.3 rule 5: 1*DIGIT has no sign",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length: +" .. N), err = PROTOCOL },
  { name = "cl_empty", why = "§6.3 rule 5: an empty Content-Length",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length: \r\nX-A: 1"), err = PROTOCOL },
  { name = "cl_beyond_any_cap", why = "a declared length past max_response_size is not read",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999"), err = TOO_LARGE },
  { name = "cl_short_body", why = "§6.3 rule 6: the connection closes before the length: incomplete",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length: " .. (N + 10)), err = RECV },
  { name = "cl_extra_bytes", why = "§6.3 rule 6: bytes past the length are not the body",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length: " .. (N - 10)), err = { kind = "decode", status = 200 } },
  { name = "read_until_close", why = "§6.3 rule 8: no length: the body ends with the connection",
    bytes = msg("HTTP/1.1 200 OK"), ok = true },
  { name = "read_until_close_http10", why = "§6.3 rule 8, HTTP/1.0",
    bytes = msg("HTTP/1.0 200 OK"), ok = true },

  -- §6.1, §7 transfer codings
  { name = "chunked", why = "§7.1: the chunked coding",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", CHUNKED), ok = true },
  { name = "chunked_any_case", why = "RFC 9110 §10.1.4: coding names are case-insensitive",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: ChUnKeD", CHUNKED), ok = true },
  { name = "chunked_empty_list_elements", why = "RFC 9110 §5.6.1: empty list elements are ignored",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: , chunked,", CHUNKED), ok = true },
  { name = "chunked_extensions", why = "§7.1.1: unrecognised chunk extensions are ignored",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", string.format("%x;a=b;c=\"d;e\"\r\n%s\r\n", #A1, A1)
      .. string.format("%x ; x = y\r\n%s\r\n", #A2, A2) .. "0;last\r\n\r\n"), ok = true },
  { name = "chunked_long_extension", why = "§7.1.1: an extension longer than a line buffer is skipped",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", string.format("%x;x=%s\r\n%s\r\n", #A1,
      ("e"):rep(10000), A1) .. chunk(A2) .. "0\r\n\r\n"), ok = true },
  { name = "chunked_trailers", why = "§7.1.2: trailer fields after the last chunk",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", chunk(A1) .. chunk(A2)
      .. "0\r\nX-Checksum: 1\r\nContent-Length: 5\r\n\r\n"), ok = true },
  { name = "chunked_bad_trailer", why = "§7.1.2: a trailer line is a field line",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", chunk(A1) .. chunk(A2) .. "0\r\nno colon\r\n\r\n"),
    err = PROTOCOL },
  { name = "chunked_trailers_past_cap", why = "trailers count against the 256 KiB cap on heads",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", chunk(A1) .. chunk(A2) .. "0\r\n"
      .. ("X-Pad: " .. ("t"):rep(1000) .. "\r\n"):rep(300) .. "\r\n"), err = TOO_LARGE },
  { name = "interim_past_cap", why = "interim heads count against the 256 KiB cap on heads",
    bytes = ("HTTP/1.1 100 Continue\r\nX-Pad: " .. ("i"):rep(1000) .. "\r\n\r\n"):rep(300)
      .. msg("HTTP/1.1 200 OK\r\nContent-Length: " .. N), err = TOO_LARGE },
  { name = "chunked_trailer_bare_cr", why = "§2.2 in a trailer line: libcurl's chunked decoder stops: incomplete",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", chunk(A1) .. chunk(A2) .. "0\r\nX-T: a\rb\r\n\r\n"),
    err = RECV },
  { name = "chunked_leading_zeros", why = "§7.1: chunk-size is 1*HEXDIG",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", string.format("%016x\r\n%s\r\n", #A1, A1)
      .. string.format("%X\r\n%s\r\n", #A2, A2) .. "0\r\n\r\n"), ok = true },
  { name = "chunked_size_17_digits", why = "§7.1: a chunk size past 64 bits (libcurl: 16 digits) is not read",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", string.format("%017x\r\n%s\r\n", #A1, A1)
      .. chunk(A2) .. "0\r\n\r\n"), err = RECV },
  { name = "chunked_size_overflow", why = "§7.1: anticipate overflowing chunk sizes",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", "8000000000000000\r\n" .. A1 .. "\r\n0\r\n\r\n"),
    err = RECV },
  { name = "chunked_bad_size", why = "§8: a chunked coding that cannot be decoded: incomplete",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", "zz\r\n" .. A1 .. "\r\n0\r\n\r\n"), err = RECV },
  { name = "chunked_space_before_size", why = "§7.1: chunk-size starts the line",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", " " .. CHUNKED), err = RECV },
  { name = "chunked_no_crlf_after_data", why = "§7.1: chunk-data CRLF",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", string.format("%x\r\n%sXX", #A1, A1)
      .. chunk(A2) .. "0\r\n\r\n"), err = RECV },
  { name = "chunked_no_last_chunk", why = "§8: closed before the last chunk: incomplete",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", chunk(A1) .. chunk(A2)), err = RECV },
  { name = "chunked_no_final_crlf", why = "§8: closed inside the trailer section: incomplete",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", chunk(A1) .. chunk(A2) .. "0\r\n"), err = RECV },
  { name = "chunked_overrides_length", why = "§6.3 rule 3: Transfer-Encoding overrides Content-Length",
    bytes = msg("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked", CHUNKED), ok = true },
  { name = "chunked_overrides_huge_length", why = "§6.3 rule 3: even a length past the cap",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99999999999", CHUNKED), ok = true },
  { name = "chunked_twice", why = "§6.1: chunked is applied at most once",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked", CHUNKED), err = PROTOCOL },
  { name = "chunked_twice_fields", why = "§6.1: chunked at most once, over repeated fields",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked", CHUNKED),
    err = PROTOCOL },
  { name = "coding_not_asked", why = "RFC 9110 §10.1.4: no TE was sent, so only chunked may be applied",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip"), err = PROTOCOL },
  { name = "coding_unknown", why = "§6.1: an unknown transfer coding",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: foo, chunked", CHUNKED), err = PROTOCOL },
  { name = "chunked_not_final", why = "§6.3 rule 4: chunked not last: a coding we cannot undo",
    bytes = msg("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip"), err = PROTOCOL },
  { name = "chunked_in_http10", why = "§6.1: Transfer-Encoding in HTTP/1.0: faulty framing",
    bytes = msg("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked", CHUNKED), err = PROTOCOL },

  -- §6.3 rule 1, RFC 9110 §15.2 interim answers
  { name = "no_body_204", why = "§6.3 rule 1: a 204 has no body, whatever the fields say",
    bytes = msg("HTTP/1.1 204 No Content\r\nContent-Length: " .. N), ok = true, empty = true },
  { name = "no_body_204_bad_framing", why = "§6.3 rule 1: framing fields of a 204 are not read",
    bytes = msg("HTTP/1.1 204 No Content\r\nContent-Length: abc\r\nTransfer-Encoding: foo", ""), ok = true,
    empty = true },
  { name = "no_body_304", why = "§6.3 rule 1: a 304 has no body",
    bytes = msg("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nContent-Length: 6", ""),
    err = { kind = "http", status = 304, retryable = false } },
  { name = "interim_100", why = "RFC 9110 §15.2: a 1xx before the answer is skipped",
    bytes = msg("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: " .. N), ok = true },
  { name = "interim_several", why = "RFC 9110 §15.2: one or more 1xx, with fields",
    bytes = msg("HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
      .. "HTTP/1.1 199 Misc\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: " .. N), ok = true },
  { name = "interim_framing_ignored", why = "§6.3 rule 1: a 1xx has no body, whatever its fields say",
    bytes = msg("HTTP/1.1 100 Continue\r\nContent-Length: abc\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: " .. N),
    ok = true },
  { name = "interim_then_http10", why = "RFC 9110 §15.2: the final answer's version counts",
    bytes = msg("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nContent-Length: " .. N), ok = true },
  { name = "interim_only", why = "§8: closed after a 1xx: no answer",
    bytes = "HTTP/1.1 100 Continue\r\n\r\n", err = RECV },
  { name = "switching_protocols", why = "RFC 9110 §15.2.2: 101 only answers an Upgrade, never sent",
    bytes = msg("HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade"), err = PROTOCOL },

  -- §8 incomplete messages
  { name = "empty_reply", why = "§8: nothing at all",
    bytes = "", err = RECV },
  { name = "head_cut", why = "§8: closed inside the header section",
    bytes = "HTTP/1.1 200 OK\r\nContent-Len", err = RECV },
  { name = "head_cut_http10", why = "§8: closed inside the header section",
    bytes = "HTTP/1.0 200 OK\r\nX-A: 1", err = RECV },
}

-- The faults of issue 13's "Must show", through a client that retries
-- (RETRY): `mode` of the hostile server (or `refused`: a closed port),
-- `call` "get" (Kontent get_environment) or "create" (Kontent
-- clone_environment), `timeout` of the client (seconds), and the error.
M.RETRY = { max_attempts = 3, base_delay = 0.01 }
local function fault(name, mode, call, err, timeout)
  return { name = name, mode = mode ~= "refused" and mode or nil, refused = mode == "refused", call = call,
    timeout = timeout or 2, err = err }
end
local function e(kind, code, retryable, maybe_applied, attempts, status)
  return { kind = kind, code = code, retryable = retryable, maybe_applied = maybe_applied, attempts = attempts,
    status = status }
end
-- retryable: envclone may send it again (the C core decides it from the
-- request's policy): never for a create that may have reached the server
M.faults = {
  fault("refused_get", "refused", "get", e("transport", "connect", true, false, 3)),
  fault("refused_create", "refused", "create", e("transport", "connect", true, false, 3)),
  fault("reset_get", "reset", "get", e("transport", "recv", true, false, 3)),
  fault("reset_create", "reset", "create", e("transport", "recv", false, true, 1)),
  fault("truncated_get", "truncated", "get", e("transport", "recv", true, false, 3)),
  fault("truncated_create", "truncated", "create", e("transport", "recv", false, true, 1)),
  fault("stalled_get", "stall", "get", e("timeout", "timeout", true, false, 3), 0.5),
  fault("stalled_create", "stall", "create", e("timeout", "timeout", false, true, 1), 0.5),
  fault("429_get", "too_many", "get", e("http", nil, true, false, 3, 429)),
  fault("429_create", "too_many", "create", e("http", nil, true, false, 3, 429)),
  fault("503_get", "unavailable", "get", e("http", nil, true, false, 3, 503)),
  fault("503_create", "unavailable", "create", e("http", nil, true, false, 3, 503)),
  fault("bare_503_create", "bare503", "create", e("http", nil, nil, true, 1, 503)),
  fault("garbage_get", "garbage", "get", e("transport", "protocol", false, false, 1)),
  fault("garbage_create", "garbage", "create", e("transport", "protocol", false, true, 1)),
  fault("huge_get", "big_length", "get", e("transport", "too_large", false, false, 1)),
  fault("huge_headers_get", "headers_many", "get", e("transport", "too_large", false, false, 1)),
  fault("huge_header_line_get", "header_huge", "get", e("transport", "too_large", false, false, 1)),
  -- issue 13: headers, then one body byte every 0.3 s: `timeout` bounds the whole call
  fault("trickled_body", "trickle", "get", e("timeout", "timeout", true, false, 1), 2),
}
M.faults[#M.faults].retry = false

M.KEY = "http1-parity-api-key-0123456789"

--- Runs one case or fault: res, err (a plain table copy, `text` = tostring)
-- and the seconds it took. `base_url` is the hostile server's (or a
-- closed port's) URL; `transport` the client option; `now` a clock.
function M.run(envclone, item, base_url, transport, now)
  local client = envclone.kontent{ api_key = M.KEY, base_url = base_url .. "/v2", transport = transport,
    timeout = item.timeout or 2, connect_timeout = 1, max_response_size = 1024 * 1024,
    retry = item.retry == nil and M.RETRY or item.retry }
  local t0 = now()
  local res, err
  if item.call == "create" then
    res, err = client:clone_environment{ environment_id = M.ENV, name = "Parity" }
  else
    res, err = client:get_environment{ environment_id = M.ENV }
  end
  local took = now() - t0
  client:close()
  if err == nil then return res, nil, took end
  local plain = {}
  for k, v in pairs(err) do plain[k] = v end
  plain.text = tostring(err)
  return res, plain, took
end

--- The fields both transports must agree on.
M.SAME = { "kind", "code", "status", "retryable", "maybe_applied", "attempts", "retry_after", "request_id" }

--- Checks one outcome against the item's expectation: nil, or what is wrong.
function M.check(item, res, err, decode)
  if item.ok then
    if err then return "expected success, got " .. tostring(err.text) end
    if item.empty then
      if res ~= true then return "expected true, got " .. tostring(res) end
      return nil
    end
    local want = decode(M.GOOD)
    for k, v in pairs(want) do
      if type(res) ~= "table" or res[k] ~= v then return "result field " .. k .. " differs" end
    end
    return nil
  end
  if not err then return "expected an error, got a result" end
  for k, v in pairs(item.err) do
    if err[k] ~= v then
      return string.format("field %s: expected %s, got %s (%s)", k, tostring(v), tostring(err[k]), tostring(err.text))
    end
  end
  return nil
end

M.by_name = {}
for _, c in ipairs(M.cases) do
  assert(not M.by_name[c.name], "duplicate case " .. c.name)
  M.by_name[c.name] = c
end

return M
