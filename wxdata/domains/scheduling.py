"""Appointment reminders, the waitlist and follow-up appointments.

One binding per entity (:class:`wxdata.crud.Ops`), each with every generic operation.
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.scheduling import (
    APPOINTMENT_REMINDERS,
    APPOINTMENT_WAITLIST,
    FOLLOW_UP_APPOINTMENTS,
    AppointmentReminder,
    AppointmentWaitlist,
    FollowUpAppointment,
)

reminders = bind_entity(APPOINTMENT_REMINDERS)
waitlist = bind_entity(APPOINTMENT_WAITLIST)
follow_ups = bind_entity(FOLLOW_UP_APPOINTMENTS)

__all__ = [
    "AppointmentReminder",
    "AppointmentWaitlist",
    "FollowUpAppointment",
    "follow_ups",
    "reminders",
    "waitlist",
]
