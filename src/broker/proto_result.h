/* What the broker's packet handlers (and the pipeline's, which they call) tell their caller. */
#ifndef BROKER_PROTO_RESULT_H
#define BROKER_PROTO_RESULT_H

#include <stdint.h>

#include "core/lmq.h"

/*
 * What a packet handler (and each step of the CONNECT path) tells its caller to do next. A
 * reason code, where one travels, comes back through a uint8_t *reason out-parameter; the
 * result alone says what to do with it.
 */
enum proto_result {
    /* Handled: go on with the next packet. For an authentication step: authenticated. A
     * handler that already ended the connection itself (a refused CONNECT) returns this too. */
    PROTO_OK = 0,
    /* End the connection with *reason (>= 0x80): DISCONNECT for MQTT 5, then close. */
    PROTO_DISCONNECT,
    /* CONNECT path (authentication, session_attach): refuse the CONNECT with CONNACK *reason
     * (>= 0x80); the caller sends it. Never returned by proto_handle_packet. */
    PROTO_REFUSE_CONNECT,
    /* A publish must wait for queue space (3.1.1 backpressure): input stops, the same packet is
     * handled again when conn_retry_blocked() resumes the connection. */
    PROTO_BLOCKED,
    /* The CONNECT waits for its password check: input stays paused (and the CONNECT
     * unconsumed) until conn_resume() hands it in again. */
    PROTO_PAUSED,
    /* Enhanced authentication took the CONNECT over: it sent AUTH (the CONNECT waits for the
     * client's answer) or refused it. Never returned by proto_handle_packet. */
    PROTO_AUTH_HANDLED,
};

/* Sets *reason to reason_code (>= 0x80) and returns PROTO_DISCONNECT. */
static inline enum proto_result proto_disconnect_with(uint8_t *reason, uint8_t reason_code)
{
    LMQ_ASSERT(reason != NULL && reason_code >= 0x80);
    *reason = reason_code;
    return PROTO_DISCONNECT;
}

#endif
