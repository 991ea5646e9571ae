// SPDX-License-Identifier: MIT
/*
 * Unit tests of the sandbox lifecycle table and the names that the API
 * shows for states and exit reasons.
 */
#include <criterion/criterion.h>

#include "sbxd/sandbox.h"

Test(sandbox, start_to_ready)
{
	cr_assert_eq(sandbox_next_state(SANDBOX_STARTING, SANDBOX_EV_READY),
		     SANDBOX_RUNNING);
}

Test(sandbox, stop_needs_running)
{
	cr_assert_eq(sandbox_next_state(SANDBOX_STARTING, SANDBOX_EV_STOP),
		     SANDBOX_STATE_INVALID);
	cr_assert_eq(sandbox_next_state(SANDBOX_RUNNING, SANDBOX_EV_STOP),
		     SANDBOX_STOPPING);
	cr_assert_eq(sandbox_next_state(SANDBOX_STOPPING, SANDBOX_EV_STOP),
		     SANDBOX_STOPPING, "a repeated stop joins the first");
	cr_assert_eq(sandbox_next_state(SANDBOX_EXITED, SANDBOX_EV_STOP),
		     SANDBOX_STATE_INVALID);
}

Test(sandbox, kill_from_any_live_state)
{
	cr_assert_eq(sandbox_next_state(SANDBOX_STARTING, SANDBOX_EV_KILL),
		     SANDBOX_STOPPING);
	cr_assert_eq(sandbox_next_state(SANDBOX_RUNNING, SANDBOX_EV_KILL),
		     SANDBOX_STOPPING);
	cr_assert_eq(sandbox_next_state(SANDBOX_STOPPING, SANDBOX_EV_KILL),
		     SANDBOX_STOPPING);
	cr_assert_eq(sandbox_next_state(SANDBOX_EXITED, SANDBOX_EV_KILL),
		     SANDBOX_STATE_INVALID);
}

Test(sandbox, reap_ends_every_live_state)
{
	for (int s = SANDBOX_STARTING; s < SANDBOX_EXITED; s++)
		cr_assert_eq(sandbox_next_state(s, SANDBOX_EV_REAPED),
			     SANDBOX_EXITED, "reap from %s",
			     sandbox_state_name(s));
	cr_assert_eq(sandbox_next_state(SANDBOX_EXITED, SANDBOX_EV_REAPED),
		     SANDBOX_STATE_INVALID, "a second reap");
}

Test(sandbox, ready_after_kill_stays_stopping)
{
	cr_assert_eq(sandbox_next_state(SANDBOX_STOPPING, SANDBOX_EV_READY),
		     SANDBOX_STOPPING);
	cr_assert_eq(sandbox_next_state(SANDBOX_RUNNING, SANDBOX_EV_READY),
		     SANDBOX_STATE_INVALID, "a second READY");
}

Test(sandbox, out_of_range_is_invalid)
{
	cr_assert_eq(sandbox_next_state(SANDBOX_STATE_COUNT, SANDBOX_EV_READY),
		     SANDBOX_STATE_INVALID);
	cr_assert_eq(sandbox_next_state(SANDBOX_RUNNING, SANDBOX_EVENT_COUNT),
		     SANDBOX_STATE_INVALID);
	cr_assert_eq(sandbox_next_state((enum sandbox_state)-1,
					SANDBOX_EV_READY),
		     SANDBOX_STATE_INVALID);
}

Test(sandbox, names)
{
	cr_assert_str_eq(sandbox_state_name(SANDBOX_STARTING), "starting");
	cr_assert_str_eq(sandbox_state_name(SANDBOX_RUNNING), "running");
	cr_assert_str_eq(sandbox_state_name(SANDBOX_PAUSED), "paused");
	cr_assert_str_eq(sandbox_state_name(SANDBOX_CHECKPOINTING),
			 "checkpointing");
	cr_assert_str_eq(sandbox_state_name(SANDBOX_STOPPING), "stopping");
	cr_assert_str_eq(sandbox_state_name(SANDBOX_EXITED), "exited");
	cr_assert_str_eq(sandbox_exit_reason_name(SBX_EXIT_GUEST),
			 "guest_exit");
	cr_assert_str_eq(sandbox_exit_reason_name(SBX_EXIT_TRIPLE_FAULT),
			 "triple_fault");
	cr_assert_str_eq(sandbox_exit_reason_name(SBX_EXIT_VMM_ERROR),
			 "vmm_error");
	cr_assert_str_eq(sandbox_exit_reason_name(9999), "unknown");
}

Test(sandbox, pause_and_resume)
{
	cr_assert_eq(sandbox_next_state(SANDBOX_RUNNING, SANDBOX_EV_PAUSED),
		     SANDBOX_PAUSED);
	cr_assert_eq(sandbox_next_state(SANDBOX_PAUSED, SANDBOX_EV_PAUSED),
		     SANDBOX_PAUSED, "a second pause changes nothing");
	cr_assert_eq(sandbox_next_state(SANDBOX_PAUSED, SANDBOX_EV_RESUMED),
		     SANDBOX_RUNNING);
	cr_assert_eq(sandbox_next_state(SANDBOX_STARTING, SANDBOX_EV_PAUSED),
		     SANDBOX_STATE_INVALID);
	cr_assert_eq(sandbox_next_state(SANDBOX_STOPPING, SANDBOX_EV_RESUMED),
		     SANDBOX_STOPPING, "a stop wins over a late RESUMED");
	cr_assert_eq(sandbox_next_state(SANDBOX_PAUSED, SANDBOX_EV_STOP),
		     SANDBOX_STOPPING, "a paused sandbox can be stopped");
	cr_assert_eq(sandbox_next_state(SANDBOX_PAUSED, SANDBOX_EV_KILL),
		     SANDBOX_STOPPING);
}

Test(sandbox, checkpoint)
{
	cr_assert_eq(sandbox_next_state(SANDBOX_RUNNING,
					SANDBOX_EV_CHECKPOINT),
		     SANDBOX_CHECKPOINTING);
	cr_assert_eq(sandbox_next_state(SANDBOX_PAUSED, SANDBOX_EV_CHECKPOINT),
		     SANDBOX_CHECKPOINTING);
	cr_assert_eq(sandbox_next_state(SANDBOX_CHECKPOINTING,
					SANDBOX_EV_CHECKPOINT),
		     SANDBOX_STATE_INVALID, "one checkpoint at a time");
	cr_assert_eq(sandbox_next_state(SANDBOX_CHECKPOINTING,
					SANDBOX_EV_READY),
		     SANDBOX_RUNNING, "READY of the new VMM");
	cr_assert_eq(sandbox_next_state(SANDBOX_CHECKPOINTING,
					SANDBOX_EV_KILL),
		     SANDBOX_STOPPING);
	cr_assert_eq(sandbox_next_state(SANDBOX_STARTING,
					SANDBOX_EV_CHECKPOINT),
		     SANDBOX_STATE_INVALID);
	cr_assert_eq(sandbox_next_state(SANDBOX_EXITED, SANDBOX_EV_CHECKPOINT),
		     SANDBOX_STATE_INVALID);
}
