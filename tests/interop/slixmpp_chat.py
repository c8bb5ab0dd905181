"""Interop: real slixmpp clients against a running Corvid.

juliet logs in with SCRAM-SHA-1 over STARTTLS, binds `balcony`, pings the server (XEP-0199),
sends romeo a message; romeo (logged in first) receives it and answers; juliet receives the
answer. Exits 0 on success, 1 with a reason otherwise.

Usage: slixmpp_chat.py HOST PORT
"""

import asyncio
import ssl
import sys

import slixmpp


def make_client(jid, password, mechanism):
    client = slixmpp.ClientXMPP(jid, password, sasl_mech=mechanism)
    client.register_plugin("xep_0199")  # ping
    client.register_plugin("xep_0030")  # disco
    # The test server uses a self-signed certificate.
    client.ssl_context = ssl.create_default_context()
    client.ssl_context.check_hostname = False
    client.ssl_context.verify_mode = ssl.CERT_NONE
    return client


async def main(host, port):
    loop = asyncio.get_running_loop()
    result = {}
    romeo_got = loop.create_future()
    juliet_got = loop.create_future()
    romeo_ready = loop.create_future()
    juliet_ready = loop.create_future()

    romeo = make_client("romeo@localhost/orchard", "secret", "SCRAM-SHA-256")
    juliet = make_client("juliet@localhost/balcony", "r0m30myr0m30", "SCRAM-SHA-1")

    async def romeo_start(_):
        romeo.send_presence()
        romeo_ready.set_result(True)

    def romeo_message(msg):
        if msg["type"] in ("chat", "normal") and not romeo_got.done():
            romeo_got.set_result((str(msg["from"]), msg["body"]))
            msg.reply("Neither, fair saint, if either thee dislike.").send()

    async def juliet_start(_):
        juliet.send_presence()
        juliet_ready.set_result(True)

    def juliet_message(msg):
        if msg["type"] in ("chat", "normal") and not juliet_got.done():
            juliet_got.set_result((str(msg["from"]), msg["body"]))

    def failed(what):
        def handler(*_):
            for f in (romeo_ready, juliet_ready):
                if not f.done():
                    f.set_exception(RuntimeError(what))
        return handler

    romeo.add_event_handler("session_start", romeo_start)
    romeo.add_event_handler("message", romeo_message)
    romeo.add_event_handler("failed_auth", failed("romeo: authentication failed"))
    juliet.add_event_handler("session_start", juliet_start)
    juliet.add_event_handler("message", juliet_message)
    juliet.add_event_handler("failed_auth", failed("juliet: authentication failed"))

    romeo.connect(host, port)
    await asyncio.wait_for(romeo_ready, 20)
    juliet.connect(host, port)
    await asyncio.wait_for(juliet_ready, 20)

    if str(juliet.boundjid) != "juliet@localhost/balcony":
        raise RuntimeError(f"bound {juliet.boundjid}, expected juliet@localhost/balcony")

    rtt = await juliet.plugin["xep_0199"].ping(jid="localhost", timeout=10)
    result["ping_rtt"] = rtt

    info = await juliet.plugin["xep_0030"].get_info(jid="localhost", timeout=10)
    features = info["disco_info"]["features"]
    if "urn:xmpp:ping" not in features:
        raise RuntimeError(f"disco#info lacks urn:xmpp:ping: {features}")

    juliet.send_message(mto="romeo@localhost", mbody="Art thou not Romeo, and a Montague?", mtype="chat")
    frm, body = await asyncio.wait_for(romeo_got, 10)
    if frm != "juliet@localhost/balcony" or body != "Art thou not Romeo, and a Montague?":
        raise RuntimeError(f"romeo got {body!r} from {frm}")
    frm, body = await asyncio.wait_for(juliet_got, 10)
    if frm != "romeo@localhost/orchard" or not body.startswith("Neither"):
        raise RuntimeError(f"juliet got {body!r} from {frm}")

    juliet.disconnect()
    romeo.disconnect()
    await asyncio.sleep(0.5)
    print(f"interop ok: ping rtt {rtt:.4f}s, message both ways, disco features {len(features)}")


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(sys.argv[1], int(sys.argv[2])), 60))
    except Exception as e:  # report any failure as a failed check
        print(f"interop FAILED: {type(e).__name__}: {e}")
        sys.exit(1)
