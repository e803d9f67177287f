// SPDX-License-Identifier: GPL-2.0
/*
 * Module runtime: termination signals.
 *
 * SIGTERM and SIGINT are blocked in every thread and taken by a small thread
 * with sigwait(), so no handler ever runs in the middle of frame processing
 * and the frame in hand is always finished. The only blocking point that must
 * be cut short is the wait for the *next* input frame: while the main thread
 * sits there, the signal thread pokes it with a private real-time signal
 * whose handler does nothing but interrupt the read (no SA_RESTART), so the
 * stream returns -EINTR. It keeps poking every 20 ms until the main thread
 * notices, which closes the race between checking the flag and entering the
 * read system call.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "module-internal.h"

#define WAKE_SIGNAL (SIGRTMIN + 4)

static void wake_handler(int sig)
{
	(void)sig;
}

static void *signal_thread(void *arg)
{
	struct qkd_module *m = arg;
	struct qkd_module_priv *pv = m->priv;
	sigset_t set;
	int sig = 0;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	/* Cancellable only inside sigwait(): never while holding a lock or stdio. */
	pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
	while (sigwait(&set, &sig))
		;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	qkd_log(m, QKD_LOG_INFO, "%s received: finishing the frame in hand, then exiting",
		sig == SIGINT ? "SIGINT" : "SIGTERM");
	pthread_mutex_lock(&m->lock);
	atomic_store(&pv->stopping, true);
	m->state = QKD_MOD_TERMINATING;
	pthread_mutex_unlock(&m->lock);
	while (!atomic_load(&pv->done)) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };

		if (atomic_load(&pv->in_read))
			pthread_kill(pv->main_thread, WAKE_SIGNAL);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int qkd_module_signals_start(struct qkd_module *m)
{
	struct qkd_module_priv *pv = m->priv;
	struct sigaction sa;
	sigset_t set;
	int err;

	/* A vanished reader must be an -EPIPE from write, not a silent death. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = wake_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: the blocked read must return EINTR */
	if (sigaction(WAKE_SIGNAL, &sa, NULL))
		return -errno;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	err = pthread_sigmask(SIG_BLOCK, &set, &pv->old_mask);
	if (err)
		return -err;
	pv->main_thread = pthread_self();
	err = pthread_create(&pv->sig_thread, NULL, signal_thread, m);
	if (err) {
		pthread_sigmask(SIG_SETMASK, &pv->old_mask, NULL);
		return -err;
	}
	pv->sig_thread_started = true;
	return 0;
}

void qkd_module_signals_stop(struct qkd_module *m)
{
	struct qkd_module_priv *pv = m->priv;

	if (!pv->sig_thread_started)
		return;
	atomic_store(&pv->done, true);
	/* sigwait() is a cancellation point; the wake loop ends on done. */
	pthread_cancel(pv->sig_thread);
	pthread_join(pv->sig_thread, NULL);
	pv->sig_thread_started = false;
	/*
	 * Once asked to stop, the process is about to exit 0: a second
	 * SIGTERM must not kill it on the way out, so the signals stay
	 * blocked. Otherwise (a library user running several modules in
	 * turn) the old mask comes back.
	 */
	if (!atomic_load(&pv->stopping))
		pthread_sigmask(SIG_SETMASK, &pv->old_mask, NULL);
}
