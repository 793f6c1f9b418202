"""paho-mqtt 2.x: QoS 2 publish and subscribe, MQTT 3.1.1 and 5.0.

20 QoS 2 messages from one client arrive exactly once, in order, at QoS 2.
Usage: paho_qos2.py PORT
"""

from _common import PROTOCOLS, Client, fail, port_from_argv

COUNT = 20


def main():
    port = port_from_argv("paho_qos2.py")
    for name, protocol in PROTOCOLS:
        topic = f"pyq2/{name}"
        sub = Client(port, f"pyq2-sub-{name}", protocol)
        sub.connect()
        sub.subscribe(topic, 2)
        pub = Client(port, f"pyq2-pub-{name}", protocol)
        pub.connect()
        for i in range(COUNT):
            pub.publish(topic, f"q2-{i}".encode(), 2)
        for i in range(COUNT):
            msg = sub.next_message()
            if msg is None:
                fail(f"MQTT {name}: message {i} of {COUNT} did not arrive")
            if (msg.topic, msg.payload, msg.qos) != (topic, f"q2-{i}".encode(), 2):
                fail(f"MQTT {name}: message {i}: got {msg.topic} {msg.payload!r} qos {msg.qos}")
        extra = sub.next_message(timeout=0.3)
        if extra is not None:
            fail(f"MQTT {name}: duplicate delivery {extra.payload!r}")
        pub.stop()
        sub.stop()
    print(f"ok: {COUNT} QoS 2 messages exactly once, in order, over MQTT 3.1.1 and 5.0")


main()
