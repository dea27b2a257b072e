// SPDX-License-Identifier: GPL-2.0
/*
 * DPDK telemetry: /netkernel/endpoints (the endpoint names) and
 * /netkernel/stats,<name> (that endpoint's counters).
 *
 * Threading: registration runs on the main lcore after rte_eal_init; the
 * callbacks run on DPDK's telemetry thread and read only the endpoints'
 * names and counters (relaxed atomic loads), holding he_eps_lock for
 * reading (the endpoint table changes at run time, live.c).
 */
#include <errno.h>

#include <rte_telemetry.h>

#include "he.h"

const char *const he_counter_names[HE_C_NR] = {
	[HE_C_REQUESTS] = "requests",
	[HE_C_REPLIES] = "replies",
	[HE_C_EVENTS] = "events",
	[HE_C_BYTES_IN] = "bytes_in",
	[HE_C_BYTES_OUT] = "bytes_out",
	[HE_C_ERRORS] = "errors",
	[HE_C_PROTO_ERRORS] = "proto_errors",
	[HE_C_CREDIT_VIOLATIONS] = "credit_violations",
	[HE_C_DROPS] = "drops",
	[HE_C_RESETS] = "resets",
	[HE_C_PENDING_BYTES] = "pending_bytes",
	[HE_C_PENDING_MAX] = "pending_max",
	[HE_C_SOCKETS] = "sockets",
	[HE_C_CONFIG_ERRORS] = "config_errors",
	[HE_C_OVERSIZE] = "oversize",
	[HE_C_SOCKET_LIMIT] = "socket_limit",
	[HE_C_CONN_RESETS] = "conn_resets",
	[HE_C_PENDING_LIMIT] = "pending_limit",
	[HE_C_CONN_RATE_LIMIT] = "conn_rate_limit",
	[HE_C_NSM_QUEUED] = "nsm_queued",
	[HE_C_NSM_QUEUED_MAX] = "nsm_queued_max",
};

static struct he_config *cfg;

static int tel_endpoints(const char *cmd, const char *params, struct rte_tel_data *d)
{
	unsigned int i;

	RTE_SET_USED(cmd);
	RTE_SET_USED(params);
	rte_tel_data_start_array(d, RTE_TEL_STRING_VAL);
	pthread_rwlock_rdlock(&he_eps_lock);
	for (i = 0; i < cfg->nr_eps; i++)
		rte_tel_data_add_array_string(d, cfg->eps[i]->name);
	pthread_rwlock_unlock(&he_eps_lock);
	return 0;
}

static int tel_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct he_ep *ep;
	unsigned int i;

	RTE_SET_USED(cmd);
	pthread_rwlock_rdlock(&he_eps_lock);
	ep = params ? he_ep_by_name(cfg, params) : NULL;
	if (ep) {
		rte_tel_data_start_dict(d);
		for (i = 0; i < HE_C_NR; i++)
			rte_tel_data_add_dict_u64(d, he_counter_names[i], he_cnt_get(ep, i));
	}
	pthread_rwlock_unlock(&he_eps_lock);
	return ep ? 0 : -EINVAL;
}

int he_telemetry_register(struct he_config *c)
{
	cfg = c;
	if (rte_telemetry_register_cmd("/netkernel/endpoints", tel_endpoints,
				       "Endpoint names. No parameters") ||
	    rte_telemetry_register_cmd("/netkernel/stats", tel_stats,
				       "Counters of an endpoint. Parameter: endpoint name"))
		return -1;
	return 0;
}
