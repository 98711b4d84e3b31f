-- Scheduling: appointments, reminders, waitlist, follow-up appointments (PHI).
-- Soft-deleting tables (PHI, education records) get no DELETE grant; references to students
-- are ON DELETE RESTRICT, so clinical history is never removed by a cascade.

CREATE TABLE appointments (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id           uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    nurse_id             uuid REFERENCES users (id) ON DELETE SET NULL,
    type                 varchar(50) NOT NULL CHECK (type IN ('ROUTINE_CHECKUP','MEDICATION_ADMINISTRATION','INJURY_ASSESSMENT','ILLNESS_EVALUATION','FOLLOW_UP','SCREENING','EMERGENCY')),
    scheduled_at         timestamptz NOT NULL,
    duration             integer NOT NULL DEFAULT 30 CHECK (duration >= 15 AND duration <= 120),
    status               varchar(50) NOT NULL DEFAULT 'SCHEDULED' CHECK (status IN ('SCHEDULED','IN_PROGRESS','COMPLETED','CANCELLED','NO_SHOW')),
    reason               varchar(500) NOT NULL,
    notes                text CHECK (char_length(notes) <= 5000),
    recurring_group_id   uuid,
    recurring_frequency  varchar(50) CHECK (recurring_frequency IN ('DAILY','WEEKLY','MONTHLY','YEARLY')),
    recurring_end_date   timestamptz,
    version              integer NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    created_by           varchar(128),
    updated_by           varchar(128),
    deleted_at           timestamptz,
    CHECK (recurring_group_id IS NULL OR recurring_frequency IS NOT NULL),
    CHECK (recurring_end_date IS NULL OR recurring_end_date >= scheduled_at)
);
CREATE INDEX appointments_student_idx ON appointments (student_id, scheduled_at DESC);
CREATE INDEX appointments_nurse_id_idx ON appointments (nurse_id, scheduled_at);
CREATE INDEX appointments_status_idx ON appointments (status, scheduled_at);
CREATE INDEX appointments_recurring_group_id_idx ON appointments (recurring_group_id);

CREATE TABLE appointment_reminders (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    appointment_id  uuid NOT NULL REFERENCES appointments (id) ON DELETE RESTRICT,
    type            varchar(50) NOT NULL CHECK (type IN ('EMAIL','SMS','PUSH_NOTIFICATION')),
    scheduled_for   timestamptz NOT NULL,
    status          varchar(50) NOT NULL DEFAULT 'SCHEDULED' CHECK (status IN ('SCHEDULED','SENT','FAILED','CANCELLED')),
    sent_at         timestamptz,
    failure_reason  text,
    message         text NOT NULL,
    version         integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
CREATE INDEX appointment_reminders_scheduled_for_idx ON appointment_reminders (scheduled_for) WHERE status = 'SCHEDULED';
CREATE INDEX appointment_reminders_appointment_id_idx ON appointment_reminders (appointment_id);

CREATE TABLE appointment_waitlist (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id      uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    nurse_id        uuid REFERENCES users (id) ON DELETE SET NULL,
    type            varchar(50) NOT NULL CHECK (type IN ('ROUTINE_CHECKUP','MEDICATION_ADMINISTRATION','INJURY_ASSESSMENT','ILLNESS_EVALUATION','FOLLOW_UP','SCREENING','EMERGENCY')),
    preferred_date  timestamptz,
    duration        integer NOT NULL DEFAULT 30 CHECK (duration >= 1),
    priority        varchar(50) NOT NULL DEFAULT 'NORMAL' CHECK (priority IN ('LOW','NORMAL','HIGH','URGENT')),
    reason          varchar(500) NOT NULL,
    notes           text,
    status          varchar(50) NOT NULL DEFAULT 'WAITING' CHECK (status IN ('WAITING','NOTIFIED','SCHEDULED','EXPIRED','CANCELLED')),
    notified_at     timestamptz,
    expires_at      timestamptz,
    version         integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
CREATE INDEX appointment_waitlist_student_idx ON appointment_waitlist (student_id, created_at);
CREATE INDEX appointment_waitlist_nurse_id_idx ON appointment_waitlist (nurse_id);

CREATE TABLE follow_up_appointments (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id           uuid NOT NULL REFERENCES students (id) ON DELETE RESTRICT,
    original_visit_id    uuid REFERENCES clinic_visits (id) ON DELETE SET NULL,
    scheduled_by         uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    scheduled_date       timestamptz NOT NULL,
    duration_minutes     integer NOT NULL DEFAULT 30 CHECK (duration_minutes >= 1),
    reason               text NOT NULL,
    type                 varchar(100) NOT NULL,
    status               varchar(50) NOT NULL DEFAULT 'SCHEDULED',
    assigned_to          uuid REFERENCES users (id) ON DELETE SET NULL,
    reminder_sent        boolean NOT NULL DEFAULT false,
    reminder_sent_at     timestamptz,
    confirmed_at         timestamptz,
    completed_visit_id   uuid REFERENCES clinic_visits (id) ON DELETE SET NULL,
    completed_at         timestamptz,
    cancelled_at         timestamptz,
    cancellation_reason  text,
    rescheduled_from_id  uuid REFERENCES follow_up_appointments (id) ON DELETE SET NULL,
    rescheduled_to_id    uuid REFERENCES follow_up_appointments (id) ON DELETE SET NULL,
    notes                text,
    priority             varchar(50) NOT NULL DEFAULT 'normal',
    version              integer NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    created_by           varchar(128),
    updated_by           varchar(128),
    deleted_at           timestamptz
);
CREATE INDEX follow_up_appointments_student_idx ON follow_up_appointments (student_id, scheduled_date DESC);
CREATE INDEX follow_up_appointments_original_visit_id_idx ON follow_up_appointments (original_visit_id);
CREATE INDEX follow_up_appointments_scheduled_by_idx ON follow_up_appointments (scheduled_by);
CREATE INDEX follow_up_appointments_assigned_to_idx ON follow_up_appointments (assigned_to);
CREATE INDEX follow_up_appointments_completed_visit_id_idx ON follow_up_appointments (completed_visit_id);
CREATE INDEX follow_up_appointments_rescheduled_from_id_idx ON follow_up_appointments (rescheduled_from_id);
CREATE INDEX follow_up_appointments_rescheduled_to_id_idx ON follow_up_appointments (rescheduled_to_id);

GRANT SELECT, INSERT, UPDATE ON appointments, appointment_reminders, appointment_waitlist, follow_up_appointments TO wxdata_app;
