#!/usr/bin/env python3
"""A loopback SMTP server for transport-smtp's tests (Python's aiosmtpd).

It listens on 127.0.0.1 on a free port and prints JSON lines on stdout:

    {"event": "ready", "port": 41234}
    {"event": "message", "peer": [...], "mail_from": ..., "rcpt_tos": [...],
     "data": "<base64 of the raw message>", "tls": true|false, "auth_user": ...}

Replies on demand, chosen by the recipient's local part:

    reply-421@...  421 4.7.0 Too many messages, slow down
    reply-450@...  450 4.2.1 Mailbox busy, try again later
    reply-550@...  550 5.1.1 User unknown
    reply-552@...  552 5.2.2 Mailbox full
    hang@...       never answers RCPT TO

AUTH (PLAIN or LOGIN, allowed without TLS) accepts user "sender" with password "secret";
anything else gets 535 5.7.8.

Modes:
    (default)                 plain SMTP, STARTTLS not offered
    --starttls CERT KEY       offers STARTTLS
    --implicit-tls CERT KEY   TLS from the first byte
    --hang                    accepts connections and never says a word
"""

import argparse
import asyncio
import base64
import json
import logging
import ssl
import sys

try:
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
except ImportError:
    print(
        "python module aiosmtpd is missing: apt-get install python3-aiosmtpd",
        file=sys.stderr,
    )
    sys.exit(3)

# aiosmtpd warns about its own deprecated attributes; keep the test output quiet.
logging.getLogger("mail.log").setLevel(logging.ERROR)

REPLIES = {
    "reply-421": "421 4.7.0 Too many messages, slow down",
    "reply-450": "450 4.2.1 Mailbox busy, try again later",
    "reply-550": "550 5.1.1 User unknown",
    "reply-552": "552 5.2.2 Mailbox full",
}
USER, PASSWORD = b"sender", b"secret"


def emit(event):
    print(json.dumps(event), flush=True)


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER
        and auth_data.password == PASSWORD
    )
    # handled=False: aiosmtpd answers 235, or 535 5.7.8 on failure.
    return AuthResult(
        success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None
    )


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local == "hang":
            await asyncio.sleep(3600)
        if local in REPLIES:
            return REPLIES[local]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        emit(
            {
                "event": "message",
                "peer": list(session.peer) if session.peer else None,
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "data": base64.b64encode(envelope.original_content).decode(),
                "tls": session.ssl is not None
                or server.transport.get_extra_info("ssl_object") is not None,
                "auth_user": session.auth_data if session.authenticated else None,
            }
        )
        return "250 2.0.0 OK: queued as 42"


def tls_context(cert, key):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def hang(reader, writer):
    await asyncio.sleep(3600)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--implicit-tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--hang", action="store_true")
    args = parser.parse_args()
    loop = asyncio.get_running_loop()

    if args.hang:
        server = await asyncio.start_server(hang, "127.0.0.1", 0)
    else:
        starttls = tls_context(*args.starttls) if args.starttls else None
        implicit = tls_context(*args.implicit_tls) if args.implicit_tls else None

        def factory():
            return SMTP(
                Handler(),
                hostname="test.invalid",
                authenticator=authenticator,
                auth_require_tls=False,
                tls_context=starttls,
                require_starttls=False,
            )

        server = await loop.create_server(factory, "127.0.0.1", 0, ssl=implicit)
    emit({"event": "ready", "port": server.sockets[0].getsockname()[1]})
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
