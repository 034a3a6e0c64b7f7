# dealbeacon application image (ingest, worker, sink, or embedded `up`); see docker-compose.yml
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY dealbeacon ./dealbeacon
COPY ingest ./ingest
COPY streams ./streams
COPY sinks ./sinks
COPY js-snippet ./js-snippet
RUN pip install --no-cache-dir .
ENV DEALBEACON_HOST=0.0.0.0 DEALBEACON_DATA_DIR=/data
VOLUME ["/data"]
ENTRYPOINT ["dealbeacon"]
CMD ["up"]
