"""The listening sockets the composition roots hand to uvicorn: connections they accept run without Nagle's
algorithm (asyncio only disables it when a socket's proto says TCP; ``socket.create_server`` leaves it 0, and
every kept-alive request then waited 40 ms for the client's delayed ACK)."""
import asyncio
import socket

from dealbeacon.app.serving import listen


def test_accepted_connections_have_nagle_off_under_asyncio():
    async def scenario():
        seen = []

        class Proto(asyncio.Protocol):
            def connection_made(self, transport):
                sock = transport.get_extra_info("socket")
                seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        sock = listen("127.0.0.1", 0)
        assert sock.proto == socket.IPPROTO_TCP
        server = await asyncio.get_running_loop().create_server(Proto, sock=sock)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
            await reader.read()  # the server closes it
            writer.close()
        finally:
            server.close()
            await server.wait_closed()
        return seen

    assert asyncio.run(scenario()) == [1]


def test_the_old_way_left_nagle_on():
    """What this guards against, shown on the same machine: a create_server socket's connections keep Nagle."""
    sock = socket.create_server(("127.0.0.1", 0))
    try:
        client = socket.create_connection(sock.getsockname())
        conn, _ = sock.accept()
        assert sock.proto == 0 and conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        conn.close()
        client.close()
    finally:
        sock.close()
