FROM python:3.11-slim

# espeak-ng for the offline text-to-speech; ca-certificates for TLS to Twilio and OpenAI.
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY voice_server ./voice_server
COPY media ./media
COPY stores ./stores
RUN pip install --no-cache-dir .

ENV HOST=0.0.0.0 PORT=8000 DATA_DIR=/data
VOLUME /data
EXPOSE 8000
USER nobody
CMD ["voice-server", "serve"]
