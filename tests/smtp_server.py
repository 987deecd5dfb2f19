"""A loopback SMTP server for the email receiver's tests, on Debian's python3-aiosmtpd:
STARTTLS required before anything else, AUTH PLAIN/LOGIN required (and only over TLS),
one JSON file per delivered message in OUT (envelope, headers, text and HTML bodies, the
login and whether the session was encrypted), one line per login attempt in OUT/auth.log.
The first --refuse logins are refused even with the right password (535), as a server
whose credentials are being changed does.

Run with Debian's interpreter: /usr/bin/python3 smtp_server.py --port N --cert C --key K
--user U --password P --out DIR [--refuse N] [--exclude PLAIN] [--implicit-tls]. Prints "ready" once it accepts connections.
"""

import argparse
import email
import email.policy
import json
import os
import signal
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--refuse", type=int, default=0)
    p.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte (port 465)")
    p.add_argument("--exclude", action="append", default=[], help="an AUTH mechanism not to offer")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    lock = threading.Lock()
    state = {"attempts": 0, "messages": 0}

    def authenticator(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        with lock:
            state["attempts"] += 1
            n = state["attempts"]
        user = auth_data.login.decode()
        ok = (
            user == a.user
            and auth_data.password.decode() == a.password
            and n > a.refuse
        )
        with open(os.path.join(a.out, "auth.log"), "a") as f:
            f.write(f"{n} {mechanism} {user} {'accepted' if ok else 'refused'}\n")
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            refused = address.endswith("@refused.example.com")
            with open(os.path.join(a.out, "rcpt.log"), "a") as f:
                f.write(f"{address} {'refused' if refused else 'accepted'}\n")
            if refused:
                return "550 5.1.1 No such user here"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            text = msg.get_body(preferencelist=("plain",))
            html = msg.get_body(preferencelist=("html",))
            record = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "headers": {k: str(v) for k, v in msg.items()},
                "content_type": msg.get_content_type(),
                "text": text.get_content() if text else None,
                "html": html.get_content() if html else None,
                "login": session.auth_data.login.decode() if session.auth_data else None,
                "tls": session.ssl is not None or a.implicit_tls,
                "hello": session.host_name,
            }
            with lock:
                state["messages"] += 1
                n = state["messages"]
            path = os.path.join(a.out, f"{n:04}.json")
            with open(path + ".tmp", "w") as f:
                json.dump(record, f)
            os.rename(path + ".tmp", path)
            return "250 OK: queued"

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    if a.implicit_tls:
        # The whole connection is TLS; aiosmtpd's "over TLS" checks only know STARTTLS.
        tls = dict(ssl_context=ctx, require_starttls=False, auth_require_tls=False)
    else:
        tls = dict(tls_context=ctx, require_starttls=True, auth_require_tls=True)
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=a.port,
        server_hostname="localhost",
        auth_required=True,
        authenticator=authenticator,
        auth_exclude_mechanism=a.exclude,
        **tls,
    )
    controller.start()
    print("ready", flush=True)
    signal.pause()


if __name__ == "__main__":
    main()
