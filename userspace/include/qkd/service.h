/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A module's CoAP service context (libcoap): bound to an ephemeral UDP port on
 * loopback, registered with the QPM, serving GET/PUT on
 *   /state       new|ready|running|paused|terminating (PUT: running, paused,
 *                terminating, hibernating)
 *   /stats       statistics as JSON, observable (CoAP Observe)
 *   /params      every parameter; /params/NAME GET, PUT for live ones
 * It runs in its own thread and never stalls frame processing.
 *
 * Hibernation is a clean cut between frames: the QPM asks the pipeline's first
 * module to hibernate; it stops producing, saves its state and exits; every
 * later module drains its input to end of stream, saves its state (when it has
 * a --state-file) and exits. Resume starts every module with its state file.
 */
#ifndef QKD_SERVICE_H
#define QKD_SERVICE_H

struct qkd_module;

/* Start serving and register with the QPM at qpm ("HOST:PORT", NULL = no registration). */
int qkd_service_start(struct qkd_module *m, const char *qpm);
/* Tell observers the statistics changed (rate-limited inside). */
void qkd_service_stats_changed(struct qkd_module *m);
/* The service's UDP port on 127.0.0.1, or -ENOENT when not started. */
int qkd_service_port(struct qkd_module *m);
/* true once the QPM acknowledged the registration. */
_Bool qkd_service_registered(struct qkd_module *m);
/* Deregister and stop the thread. */
void qkd_service_stop(struct qkd_module *m);

#endif
