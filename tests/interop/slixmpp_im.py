"""Interop (RFC 6121 and the IM extensions) with real slixmpp clients against a running Corvid.

- alice (phone) and bob (laptop) subscribe to each other (slixmpp's default auto-authorize and
  auto-subscribe answer the requests) and each sees the other's presence;
- alice's second resource (tablet) enables XEP-0280 carbons and gets copies of what alice's
  phone sends and receives;
- bob goes offline, alice writes to him, and bob gets the message with a delay stamp
  (XEP-0160, XEP-0203) when he comes back.

Usage: slixmpp_im.py HOST PORT. Exits 0 and prints "interop ok" on success.
"""

import asyncio
import ssl
import sys

import slixmpp


def make(jid, password, host, port):
    c = slixmpp.ClientXMPP(jid, password)
    for p in ("xep_0030", "xep_0199", "xep_0280", "xep_0203"):
        c.register_plugin(p)
    c.ssl_context = ssl.create_default_context()
    c.ssl_context.check_hostname = False
    c.ssl_context.verify_mode = ssl.CERT_NONE
    c._corvid_addr = (host, port)
    return c


async def online(c):
    started = asyncio.get_running_loop().create_future()

    async def on_start(_):
        await c.get_roster()
        c.send_presence()
        if not started.done():
            started.set_result(True)

    c.add_event_handler("session_start", on_start)
    c.add_event_handler("failed_auth", lambda *_: started.done() or started.set_exception(RuntimeError(f"{c.boundjid.bare}: auth failed")))
    c.connect(*c._corvid_addr)
    await asyncio.wait_for(started, 20)


async def wait_for(pred, what, timeout=10):
    for _ in range(int(timeout / 0.05)):
        if pred():
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def future_event(c, event, pred=lambda x: True):
    f = asyncio.get_running_loop().create_future()

    def handler(x):
        if not f.done() and pred(x):
            f.set_result(x)

    c.add_event_handler(event, handler)
    return f


async def main(host, port):
    alice = make("alice@localhost/phone", "alice-pw", host, port)
    bob = make("bob@localhost/laptop", "bob-pw", host, port)
    await online(alice)
    await online(bob)

    # RFC 6121 §3: subscription both ways, answered by slixmpp's auto-authorize/subscribe.
    alice.send_presence_subscription(pto="bob@localhost")
    await wait_for(lambda: alice.client_roster["bob@localhost"]["subscription"] == "both"
                   and bob.client_roster["alice@localhost"]["subscription"] == "both",
                   "mutual subscription")
    # RFC 6121 §4: each sees the other's available resource.
    await wait_for(lambda: "laptop" in alice.client_roster["bob@localhost"].resources
                   and "phone" in bob.client_roster["alice@localhost"].resources,
                   "presence both ways")

    # XEP-0280: a second resource of alice's with carbons on.
    tablet = make("alice@localhost/tablet", "alice-pw", host, port)
    await online(tablet)
    await tablet.plugin["xep_0280"].enable()
    received_copy = future_event(tablet, "carbon_received")
    sent_copy = future_event(tablet, "carbon_sent")
    phone_got = future_event(alice, "message", lambda m: m["body"] == "hello phone")
    bob.send_message(mto="alice@localhost/phone", mbody="hello phone", mtype="chat")
    await asyncio.wait_for(phone_got, 10)
    copy = await asyncio.wait_for(received_copy, 10)
    if copy["carbon_received"]["body"] != "hello phone":
        raise RuntimeError(f"received carbon has {copy['carbon_received']['body']!r}")
    bob_got = future_event(bob, "message", lambda m: m["body"] == "hello bob")
    alice.send_message(mto="bob@localhost/laptop", mbody="hello bob", mtype="chat")
    await asyncio.wait_for(bob_got, 10)
    copy = await asyncio.wait_for(sent_copy, 10)
    if copy["carbon_sent"]["body"] != "hello bob":
        raise RuntimeError(f"sent carbon has {copy['carbon_sent']['body']!r}")

    # RFC 6121 §4.5 and XEP-0160: bob leaves; alice sees him go and writes to him.
    bob.disconnect()
    await wait_for(lambda: "laptop" not in alice.client_roster["bob@localhost"].resources,
                   "bob's unavailable presence")
    alice.send_message(mto="bob@localhost", mbody="while you were away", mtype="chat")
    await asyncio.sleep(0.3)
    bob2 = make("bob@localhost/laptop", "bob-pw", host, port)
    offline = future_event(bob2, "message", lambda m: m["body"] == "while you were away")
    await online(bob2)
    msg = await asyncio.wait_for(offline, 10)
    if not msg["delay"]["stamp"]:
        raise RuntimeError("offline message has no XEP-0203 delay stamp")
    if str(msg["from"]) != "alice@localhost/phone":
        raise RuntimeError(f"offline message from {msg['from']}")

    for c in (alice, tablet, bob2):
        c.disconnect()
    await asyncio.sleep(0.3)
    print("interop ok: subscription both ways, presence, carbons sent and received, offline delivery")


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(sys.argv[1], int(sys.argv[2])), 90))
    except Exception as e:  # any failure is a failed check
        print(f"interop FAILED: {type(e).__name__}: {e}")
        sys.exit(1)
