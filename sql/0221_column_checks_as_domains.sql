-- Every CHECK of a domain table that reads one column becomes a domain of that column's own,
-- holding the same check, and the table's CHECK is dropped: 226 columns over 72 tables, the
-- closed vocabularies (125: students.gender, appointments.status...) and the ranges, lengths and
-- lists of the rest (101: vital_signs.heart_rate between 0 and 400, appointments.notes at most
-- 5,000 characters, alert_preferences.channels within its list...).
--
-- PostgreSQL sets a table's CHECK constraints up again on every execution of an INSERT or UPDATE,
-- prepared or not: each expression is read back from its stored form and planned (an IN list over
-- a varchar column is coerced to text[] at every set-up), and an UPDATE checks every CHECK of its
-- table whatever columns it sets. A domain's check is planned once per connection and runs only
-- where a value is assigned to a column of that domain. Measured, in server instructions per
-- execution on PostgreSQL 15 (`python -m benchmarks.bench_check_instructions`): a vocabulary as a
-- table CHECK costs an INSERT 52,000 to 67,000, as a domain 11,000; the thirteen rules of
-- vital_signs cost an INSERT 384,000 as table CHECKs and 79,000 as domains, and an UPDATE that
-- sets none of them 385,000 and nothing.
--
-- What is accepted and refused is unchanged: the same values, NULL where the column admits it,
-- from any writer (a literal, an untyped or typed parameter, a text or varchar value, COPY). A
-- value a check refuses is still refused with SQLSTATE 23514 (check_violation), now naming the
-- domain and its constraint, `<column>_check`, where the table's was `<table>_<column>_check`
-- (wxdata maps either to the column). A domain's error quotes no row: where a table CHECK's error
-- said "Failing row contains (...)", with every value of the row, it says which domain refused.
-- The columns read back as their base type (PostgreSQL describes a domain's column by its base
-- type, so drivers see varchar, integer, numeric as before), and compare, sort, match LIKE and
-- use their indexes as before.
--
-- Each domain is its table and column's own, `<table>_<column>`: no two columns share a rule by
-- accident, and changing one column's rule changes no other's.
--
-- Changing a column's type to a domain with a check rewrites its table under an ACCESS EXCLUSIVE
-- lock (each table once, all its columns in one statement): writes to it wait for the rewrite.
-- On large tables, run this migration in a quiet window.
--
-- Left as table CHECKs: the rules over several columns (a follow-up flagged as required has a
-- date...), and the audit trail's and wxdata's own tables (audit_legal_hold.kind is read by a
-- view; their other checks guard a seal's or a key's length, written a few times a day).

CREATE DOMAIN academic_transcripts_gpa AS numeric(3,2)
    CONSTRAINT gpa_check CHECK ((VALUE >= (0)::numeric) AND (VALUE <= (5)::numeric));
ALTER TABLE academic_transcripts
    DROP CONSTRAINT academic_transcripts_gpa_check,
    ALTER COLUMN gpa TYPE academic_transcripts_gpa;

CREATE DOMAIN alert_preferences_channels AS text[]
    CONSTRAINT channels_check CHECK (VALUE <@ ARRAY['WEBSOCKET'::text, 'EMAIL'::text, 'SMS'::text,
        'PUSH_NOTIFICATION'::text]);
CREATE DOMAIN alert_preferences_severity_filter AS text[]
    CONSTRAINT severity_filter_check CHECK (VALUE <@ ARRAY['INFO'::text, 'LOW'::text,
        'MEDIUM'::text, 'HIGH'::text, 'CRITICAL'::text, 'EMERGENCY'::text]);
CREATE DOMAIN alert_preferences_category_filter AS text[]
    CONSTRAINT category_filter_check CHECK (VALUE <@ ARRAY['HEALTH'::text, 'SAFETY'::text,
        'COMPLIANCE'::text, 'SYSTEM'::text, 'MEDICATION'::text, 'APPOINTMENT'::text]);
ALTER TABLE alert_preferences
    DROP CONSTRAINT alert_preferences_channels_check,
    DROP CONSTRAINT alert_preferences_severity_filter_check,
    DROP CONSTRAINT alert_preferences_category_filter_check,
    ALTER COLUMN channels TYPE alert_preferences_channels,
    ALTER COLUMN severity_filter TYPE alert_preferences_severity_filter,
    ALTER COLUMN category_filter TYPE alert_preferences_category_filter;

CREATE DOMAIN alert_rules_category AS varchar(50)
    CONSTRAINT category_check CHECK (VALUE IN ('HEALTH', 'SAFETY', 'COMPLIANCE', 'SYSTEM',
        'MEDICATION', 'APPOINTMENT'));
CREATE DOMAIN alert_rules_severity AS varchar(50)
    CONSTRAINT severity_check CHECK (VALUE IN ('INFO', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL',
        'EMERGENCY'));
CREATE DOMAIN alert_rules_auto_escalate_after AS integer
    CONSTRAINT auto_escalate_after_check CHECK (VALUE >= 0);
CREATE DOMAIN alert_rules_cooldown_period AS integer
    CONSTRAINT cooldown_period_check CHECK (VALUE >= 0);
CREATE DOMAIN alert_rules_expires_after AS integer
    CONSTRAINT expires_after_check CHECK (VALUE >= 0);
CREATE DOMAIN alert_rules_trigger_count AS integer
    CONSTRAINT trigger_count_check CHECK (VALUE >= 0);
ALTER TABLE alert_rules
    DROP CONSTRAINT alert_rules_category_check,
    DROP CONSTRAINT alert_rules_severity_check,
    DROP CONSTRAINT alert_rules_auto_escalate_after_check,
    DROP CONSTRAINT alert_rules_cooldown_period_check,
    DROP CONSTRAINT alert_rules_expires_after_check,
    DROP CONSTRAINT alert_rules_trigger_count_check,
    ALTER COLUMN category TYPE alert_rules_category,
    ALTER COLUMN severity TYPE alert_rules_severity,
    ALTER COLUMN auto_escalate_after TYPE alert_rules_auto_escalate_after,
    ALTER COLUMN cooldown_period TYPE alert_rules_cooldown_period,
    ALTER COLUMN expires_after TYPE alert_rules_expires_after,
    ALTER COLUMN trigger_count TYPE alert_rules_trigger_count;

CREATE DOMAIN alerts_severity AS varchar(50)
    CONSTRAINT severity_check CHECK (VALUE IN ('INFO', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL',
        'EMERGENCY'));
CREATE DOMAIN alerts_category AS varchar(50)
    CONSTRAINT category_check CHECK (VALUE IN ('HEALTH', 'SAFETY', 'COMPLIANCE', 'SYSTEM',
        'MEDICATION', 'APPOINTMENT'));
CREATE DOMAIN alerts_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('ACTIVE', 'ACKNOWLEDGED', 'RESOLVED', 'EXPIRED',
        'DISMISSED'));
CREATE DOMAIN alerts_auto_escalate_after AS integer
    CONSTRAINT auto_escalate_after_check CHECK (VALUE >= 0);
CREATE DOMAIN alerts_escalation_level AS integer
    CONSTRAINT escalation_level_check CHECK (VALUE >= 0);
ALTER TABLE alerts
    DROP CONSTRAINT alerts_severity_check,
    DROP CONSTRAINT alerts_category_check,
    DROP CONSTRAINT alerts_status_check,
    DROP CONSTRAINT alerts_auto_escalate_after_check,
    DROP CONSTRAINT alerts_escalation_level_check,
    ALTER COLUMN severity TYPE alerts_severity,
    ALTER COLUMN category TYPE alerts_category,
    ALTER COLUMN status TYPE alerts_status,
    ALTER COLUMN auto_escalate_after TYPE alerts_auto_escalate_after,
    ALTER COLUMN escalation_level TYPE alerts_escalation_level;

CREATE DOMAIN allergies_allergy_type AS varchar(50)
    CONSTRAINT allergy_type_check CHECK (VALUE IN ('FOOD', 'MEDICATION', 'ENVIRONMENTAL', 'INSECT',
        'LATEX', 'OTHER'));
CREATE DOMAIN allergies_severity AS varchar(50)
    CONSTRAINT severity_check CHECK (VALUE IN ('MILD', 'MODERATE', 'SEVERE', 'LIFE_THREATENING'));
ALTER TABLE allergies
    DROP CONSTRAINT allergies_allergy_type_check,
    DROP CONSTRAINT allergies_severity_check,
    ALTER COLUMN allergy_type TYPE allergies_allergy_type,
    ALTER COLUMN severity TYPE allergies_severity;

CREATE DOMAIN analytics_reports_report_type AS varchar(50)
    CONSTRAINT report_type_check CHECK (VALUE IN ('COMPLIANCE', 'HEALTH_TRENDS',
        'INCIDENT_ANALYSIS', 'MEDICATION_USAGE', 'APPOINTMENT_UTILIZATION',
        'STUDENT_HEALTH_OVERVIEW', 'NURSE_WORKLOAD', 'EQUIPMENT_MAINTENANCE', 'BUDGET_ANALYSIS',
        'CUSTOM'));
CREATE DOMAIN analytics_reports_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('PENDING', 'GENERATING', 'COMPLETED', 'FAILED',
        'CANCELLED'));
CREATE DOMAIN analytics_reports_format AS varchar(50)
    CONSTRAINT format_check CHECK (VALUE IN ('PDF', 'CSV', 'EXCEL', 'JSON', 'HTML'));
CREATE DOMAIN analytics_reports_file_size AS integer
    CONSTRAINT file_size_check CHECK (VALUE >= 0);
ALTER TABLE analytics_reports
    DROP CONSTRAINT analytics_reports_report_type_check,
    DROP CONSTRAINT analytics_reports_status_check,
    DROP CONSTRAINT analytics_reports_format_check,
    DROP CONSTRAINT analytics_reports_file_size_check,
    ALTER COLUMN report_type TYPE analytics_reports_report_type,
    ALTER COLUMN status TYPE analytics_reports_status,
    ALTER COLUMN format TYPE analytics_reports_format,
    ALTER COLUMN file_size TYPE analytics_reports_file_size;

CREATE DOMAIN api_keys_usage_count AS integer
    CONSTRAINT usage_count_check CHECK (VALUE >= 0);
CREATE DOMAIN api_keys_rate_limit AS integer
    CONSTRAINT rate_limit_check CHECK (VALUE >= 0);
ALTER TABLE api_keys
    DROP CONSTRAINT api_keys_usage_count_check,
    DROP CONSTRAINT api_keys_rate_limit_check,
    ALTER COLUMN usage_count TYPE api_keys_usage_count,
    ALTER COLUMN rate_limit TYPE api_keys_rate_limit;

CREATE DOMAIN appointment_reminders_type AS varchar(50)
    CONSTRAINT type_check CHECK (VALUE IN ('EMAIL', 'SMS', 'PUSH_NOTIFICATION'));
CREATE DOMAIN appointment_reminders_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('SCHEDULED', 'SENT', 'FAILED', 'CANCELLED'));
ALTER TABLE appointment_reminders
    DROP CONSTRAINT appointment_reminders_type_check,
    DROP CONSTRAINT appointment_reminders_status_check,
    ALTER COLUMN type TYPE appointment_reminders_type,
    ALTER COLUMN status TYPE appointment_reminders_status;

CREATE DOMAIN appointment_waitlist_type AS varchar(50)
    CONSTRAINT type_check CHECK (VALUE IN ('ROUTINE_CHECKUP', 'MEDICATION_ADMINISTRATION',
        'INJURY_ASSESSMENT', 'ILLNESS_EVALUATION', 'FOLLOW_UP', 'SCREENING', 'EMERGENCY'));
CREATE DOMAIN appointment_waitlist_duration AS integer
    CONSTRAINT duration_check CHECK (VALUE >= 1);
CREATE DOMAIN appointment_waitlist_priority AS varchar(50)
    CONSTRAINT priority_check CHECK (VALUE IN ('LOW', 'NORMAL', 'HIGH', 'URGENT'));
CREATE DOMAIN appointment_waitlist_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('WAITING', 'NOTIFIED', 'SCHEDULED', 'EXPIRED',
        'CANCELLED'));
ALTER TABLE appointment_waitlist
    DROP CONSTRAINT appointment_waitlist_type_check,
    DROP CONSTRAINT appointment_waitlist_duration_check,
    DROP CONSTRAINT appointment_waitlist_priority_check,
    DROP CONSTRAINT appointment_waitlist_status_check,
    ALTER COLUMN type TYPE appointment_waitlist_type,
    ALTER COLUMN duration TYPE appointment_waitlist_duration,
    ALTER COLUMN priority TYPE appointment_waitlist_priority,
    ALTER COLUMN status TYPE appointment_waitlist_status;

CREATE DOMAIN appointments_type AS varchar(50)
    CONSTRAINT type_check CHECK (VALUE IN ('ROUTINE_CHECKUP', 'MEDICATION_ADMINISTRATION',
        'INJURY_ASSESSMENT', 'ILLNESS_EVALUATION', 'FOLLOW_UP', 'SCREENING', 'EMERGENCY'));
CREATE DOMAIN appointments_duration AS integer
    CONSTRAINT duration_check CHECK ((VALUE >= 15) AND (VALUE <= 120));
CREATE DOMAIN appointments_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('SCHEDULED', 'IN_PROGRESS', 'COMPLETED', 'CANCELLED',
        'NO_SHOW'));
CREATE DOMAIN appointments_notes AS text
    CONSTRAINT notes_check CHECK (char_length(VALUE) <= 5000);
CREATE DOMAIN appointments_recurring_frequency AS varchar(50)
    CONSTRAINT recurring_frequency_check CHECK (VALUE IN ('DAILY', 'WEEKLY', 'MONTHLY', 'YEARLY'));
ALTER TABLE appointments
    DROP CONSTRAINT appointments_type_check,
    DROP CONSTRAINT appointments_duration_check,
    DROP CONSTRAINT appointments_status_check,
    DROP CONSTRAINT appointments_notes_check,
    DROP CONSTRAINT appointments_recurring_frequency_check,
    ALTER COLUMN type TYPE appointments_type,
    ALTER COLUMN duration TYPE appointments_duration,
    ALTER COLUMN status TYPE appointments_status,
    ALTER COLUMN notes TYPE appointments_notes,
    ALTER COLUMN recurring_frequency TYPE appointments_recurring_frequency;

CREATE DOMAIN backup_logs_type AS varchar(50)
    CONSTRAINT type_check CHECK (VALUE IN ('AUTOMATIC', 'MANUAL', 'SCHEDULED'));
CREATE DOMAIN backup_logs_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('IN_PROGRESS', 'COMPLETED', 'FAILED'));
CREATE DOMAIN backup_logs_file_size AS bigint
    CONSTRAINT file_size_check CHECK (VALUE >= 0);
ALTER TABLE backup_logs
    DROP CONSTRAINT backup_logs_type_check,
    DROP CONSTRAINT backup_logs_status_check,
    DROP CONSTRAINT backup_logs_file_size_check,
    ALTER COLUMN type TYPE backup_logs_type,
    ALTER COLUMN status TYPE backup_logs_status,
    ALTER COLUMN file_size TYPE backup_logs_file_size;

CREATE DOMAIN budget_categories_fiscal_year AS integer
    CONSTRAINT fiscal_year_check CHECK ((VALUE >= 1900) AND (VALUE <= 9999));
CREATE DOMAIN budget_categories_allocated_amount AS numeric(10,2)
    CONSTRAINT allocated_amount_check CHECK (VALUE >= (0)::numeric);
ALTER TABLE budget_categories
    DROP CONSTRAINT budget_categories_fiscal_year_check,
    DROP CONSTRAINT budget_categories_allocated_amount_check,
    ALTER COLUMN fiscal_year TYPE budget_categories_fiscal_year,
    ALTER COLUMN allocated_amount TYPE budget_categories_allocated_amount;

CREATE DOMAIN budget_transactions_amount AS numeric(10,2)
    CONSTRAINT amount_check CHECK (VALUE >= (0)::numeric);
ALTER TABLE budget_transactions
    DROP CONSTRAINT budget_transactions_amount_check,
    ALTER COLUMN amount TYPE budget_transactions_amount;

CREATE DOMAIN chronic_conditions_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('ACTIVE', 'MANAGED', 'RESOLVED', 'MONITORING'));
ALTER TABLE chronic_conditions
    DROP CONSTRAINT chronic_conditions_status_check,
    ALTER COLUMN status TYPE chronic_conditions_status;

CREATE DOMAIN clinic_visits_disposition AS varchar(50)
    CONSTRAINT disposition_check CHECK (VALUE IN ('RETURN_TO_CLASS', 'SENT_HOME',
        'EMERGENCY_TRANSPORT', 'OTHER'));
CREATE DOMAIN clinic_visits_minutes_missed AS integer
    CONSTRAINT minutes_missed_check CHECK (VALUE >= 0);
ALTER TABLE clinic_visits
    DROP CONSTRAINT clinic_visits_disposition_check,
    DROP CONSTRAINT clinic_visits_minutes_missed_check,
    ALTER COLUMN disposition TYPE clinic_visits_disposition,
    ALTER COLUMN minutes_missed TYPE clinic_visits_minutes_missed;

CREATE DOMAIN compliance_checklist_items_category AS varchar(50)
    CONSTRAINT category_check CHECK (VALUE IN ('HIPAA_PRIVACY', 'HIPAA_SECURITY', 'FERPA',
        'MEDICATION', 'SAFETY', 'TRAINING', 'DOCUMENTATION'));
CREATE DOMAIN compliance_checklist_items_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('PENDING', 'IN_PROGRESS', 'COMPLETED',
        'NOT_APPLICABLE', 'FAILED'));
ALTER TABLE compliance_checklist_items
    DROP CONSTRAINT compliance_checklist_items_category_check,
    DROP CONSTRAINT compliance_checklist_items_status_check,
    ALTER COLUMN category TYPE compliance_checklist_items_category,
    ALTER COLUMN status TYPE compliance_checklist_items_status;

CREATE DOMAIN compliance_reports_report_type AS varchar(50)
    CONSTRAINT report_type_check CHECK (VALUE IN ('HIPAA', 'FERPA', 'PRIVACY', 'SECURITY', 'BREACH',
        'RISK_ASSESSMENT', 'TRAINING', 'AUDIT'));
CREATE DOMAIN compliance_reports_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('PENDING', 'IN_PROGRESS', 'COMPLIANT', 'NON_COMPLIANT',
        'NEEDS_REVIEW'));
ALTER TABLE compliance_reports
    DROP CONSTRAINT compliance_reports_report_type_check,
    DROP CONSTRAINT compliance_reports_status_check,
    ALTER COLUMN report_type TYPE compliance_reports_report_type,
    ALTER COLUMN status TYPE compliance_reports_status;

CREATE DOMAIN compliance_violations_violation_type AS varchar(50)
    CONSTRAINT violation_type_check CHECK (VALUE IN ('HIPAA_BREACH', 'FERPA_VIOLATION',
        'UNAUTHORIZED_ACCESS', 'DATA_LEAK', 'POLICY_VIOLATION', 'PROCEDURE_VIOLATION',
        'TRAINING_DEFICIENCY'));
CREATE DOMAIN compliance_violations_severity AS varchar(50)
    CONSTRAINT severity_check CHECK (VALUE IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL'));
CREATE DOMAIN compliance_violations_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('REPORTED', 'INVESTIGATING', 'REMEDIATION_IN_PROGRESS',
        'RESOLVED', 'CLOSED'));
ALTER TABLE compliance_violations
    DROP CONSTRAINT compliance_violations_violation_type_check,
    DROP CONSTRAINT compliance_violations_severity_check,
    DROP CONSTRAINT compliance_violations_status_check,
    ALTER COLUMN violation_type TYPE compliance_violations_violation_type,
    ALTER COLUMN severity TYPE compliance_violations_severity,
    ALTER COLUMN status TYPE compliance_violations_status;

CREATE DOMAIN consent_forms_type AS varchar(50)
    CONSTRAINT type_check CHECK (VALUE IN ('MEDICATION_ADMINISTRATION', 'PHOTO_RELEASE',
        'FIELD_TRIP', 'EMERGENCY_TREATMENT', 'DATA_SHARING', 'RESEARCH'));
ALTER TABLE consent_forms
    DROP CONSTRAINT consent_forms_type_check,
    ALTER COLUMN type TYPE consent_forms_type;

CREATE DOMAIN conversation_participants_role AS varchar(50)
    CONSTRAINT role_check CHECK (VALUE IN ('OWNER', 'ADMIN', 'MEMBER', 'VIEWER'));
CREATE DOMAIN conversation_participants_notification_preference AS varchar(20)
    CONSTRAINT notification_preference_check CHECK (VALUE IN ('ALL', 'MENTIONS', 'NONE'));
ALTER TABLE conversation_participants
    DROP CONSTRAINT conversation_participants_role_check,
    DROP CONSTRAINT conversation_participants_notification_preference_check,
    ALTER COLUMN role TYPE conversation_participants_role,
    ALTER COLUMN notification_preference TYPE conversation_participants_notification_preference;

CREATE DOMAIN conversations_type AS varchar(50)
    CONSTRAINT type_check CHECK (VALUE IN ('DIRECT', 'GROUP', 'CHANNEL'));
ALTER TABLE conversations
    DROP CONSTRAINT conversations_type_check,
    ALTER COLUMN type TYPE conversations_type;

CREATE DOMAIN data_retention_policies_category AS varchar(50)
    CONSTRAINT category_check CHECK (VALUE IN ('STUDENT_RECORDS', 'HEALTH_RECORDS',
        'MEDICATION_LOGS', 'AUDIT_LOGS', 'CONSENT_FORMS', 'INCIDENT_REPORTS', 'TRAINING_RECORDS'));
CREATE DOMAIN data_retention_policies_retention_period_days AS integer
    CONSTRAINT retention_period_days_check CHECK (VALUE >= 1);
CREATE DOMAIN data_retention_policies_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('ACTIVE', 'INACTIVE', 'UNDER_REVIEW'));
ALTER TABLE data_retention_policies
    DROP CONSTRAINT data_retention_policies_category_check,
    DROP CONSTRAINT data_retention_policies_retention_period_days_check,
    DROP CONSTRAINT data_retention_policies_status_check,
    ALTER COLUMN category TYPE data_retention_policies_category,
    ALTER COLUMN retention_period_days TYPE data_retention_policies_retention_period_days,
    ALTER COLUMN status TYPE data_retention_policies_status;

CREATE DOMAIN delivery_logs_channel AS varchar(50)
    CONSTRAINT channel_check CHECK (VALUE IN ('email', 'sms', 'push', 'voice'));
CREATE DOMAIN delivery_logs_attempt_count AS integer
    CONSTRAINT attempt_count_check CHECK (VALUE >= 0);
ALTER TABLE delivery_logs
    DROP CONSTRAINT delivery_logs_channel_check,
    DROP CONSTRAINT delivery_logs_attempt_count_check,
    ALTER COLUMN channel TYPE delivery_logs_channel,
    ALTER COLUMN attempt_count TYPE delivery_logs_attempt_count;

CREATE DOMAIN device_tokens_platform AS varchar(50)
    CONSTRAINT platform_check CHECK (VALUE IN ('FCM', 'APNS', 'WEB_PUSH', 'SMS', 'EMAIL'));
ALTER TABLE device_tokens
    DROP CONSTRAINT device_tokens_platform_check,
    ALTER COLUMN platform TYPE device_tokens_platform;

CREATE DOMAIN documents_description AS text
    CONSTRAINT description_check CHECK (char_length(VALUE) <= 5000);
CREATE DOMAIN documents_category AS varchar(50)
    CONSTRAINT category_check CHECK (VALUE IN ('MEDICAL_RECORD', 'INCIDENT_REPORT', 'CONSENT_FORM',
        'POLICY', 'TRAINING', 'ADMINISTRATIVE', 'STUDENT_FILE', 'INSURANCE', 'OTHER'));
CREATE DOMAIN documents_file_size AS bigint
    CONSTRAINT file_size_check
        CHECK ((VALUE >= 1024) AND ((VALUE)::numeric <= '52428800'::numeric));
CREATE DOMAIN documents_tags AS text[]
    CONSTRAINT tags_check CHECK ((VALUE IS NULL) OR (cardinality(VALUE) <= 10));
CREATE DOMAIN documents_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('DRAFT', 'PENDING_REVIEW', 'APPROVED', 'ARCHIVED',
        'EXPIRED'));
CREATE DOMAIN documents_document_version AS integer
    CONSTRAINT document_version_check CHECK ((VALUE >= 1) AND (VALUE <= 100));
CREATE DOMAIN documents_access_level AS varchar(50)
    CONSTRAINT access_level_check CHECK (VALUE IN ('PUBLIC', 'STAFF_ONLY', 'ADMIN_ONLY',
        'RESTRICTED'));
CREATE DOMAIN documents_access_count AS integer
    CONSTRAINT access_count_check CHECK (VALUE >= 0);
ALTER TABLE documents
    DROP CONSTRAINT documents_description_check,
    DROP CONSTRAINT documents_category_check,
    DROP CONSTRAINT documents_file_size_check,
    DROP CONSTRAINT documents_tags_check,
    DROP CONSTRAINT documents_status_check,
    DROP CONSTRAINT documents_document_version_check,
    DROP CONSTRAINT documents_access_level_check,
    DROP CONSTRAINT documents_access_count_check,
    ALTER COLUMN description TYPE documents_description,
    ALTER COLUMN category TYPE documents_category,
    ALTER COLUMN file_size TYPE documents_file_size,
    ALTER COLUMN tags TYPE documents_tags,
    ALTER COLUMN status TYPE documents_status,
    ALTER COLUMN document_version TYPE documents_document_version,
    ALTER COLUMN access_level TYPE documents_access_level,
    ALTER COLUMN access_count TYPE documents_access_count;

CREATE DOMAIN emergency_broadcasts_total_recipients AS integer
    CONSTRAINT total_recipients_check CHECK (VALUE >= 0);
CREATE DOMAIN emergency_broadcasts_delivered_count AS integer
    CONSTRAINT delivered_count_check CHECK (VALUE >= 0);
CREATE DOMAIN emergency_broadcasts_failed_count AS integer
    CONSTRAINT failed_count_check CHECK (VALUE >= 0);
CREATE DOMAIN emergency_broadcasts_acknowledged_count AS integer
    CONSTRAINT acknowledged_count_check CHECK (VALUE >= 0);
ALTER TABLE emergency_broadcasts
    DROP CONSTRAINT emergency_broadcasts_total_recipients_check,
    DROP CONSTRAINT emergency_broadcasts_delivered_count_check,
    DROP CONSTRAINT emergency_broadcasts_failed_count_check,
    DROP CONSTRAINT emergency_broadcasts_acknowledged_count_check,
    ALTER COLUMN total_recipients TYPE emergency_broadcasts_total_recipients,
    ALTER COLUMN delivered_count TYPE emergency_broadcasts_delivered_count,
    ALTER COLUMN failed_count TYPE emergency_broadcasts_failed_count,
    ALTER COLUMN acknowledged_count TYPE emergency_broadcasts_acknowledged_count;

CREATE DOMAIN emergency_contacts_priority AS varchar(50)
    CONSTRAINT priority_check CHECK (VALUE IN ('PRIMARY', 'SECONDARY', 'EMERGENCY_ONLY'));
CREATE DOMAIN emergency_contacts_preferred_contact_method AS varchar(50)
    CONSTRAINT preferred_contact_method_check CHECK (VALUE IN ('SMS', 'EMAIL', 'VOICE', 'ANY'));
CREATE DOMAIN emergency_contacts_verification_status AS varchar(50)
    CONSTRAINT verification_status_check CHECK (VALUE IN ('UNVERIFIED', 'PENDING', 'VERIFIED',
        'FAILED'));
CREATE DOMAIN emergency_contacts_notification_channels AS text[]
    CONSTRAINT notification_channels_check CHECK (VALUE <@ ARRAY['sms'::text, 'email'::text,
        'voice'::text]);
ALTER TABLE emergency_contacts
    DROP CONSTRAINT emergency_contacts_priority_check,
    DROP CONSTRAINT emergency_contacts_preferred_contact_method_check,
    DROP CONSTRAINT emergency_contacts_verification_status_check,
    DROP CONSTRAINT emergency_contacts_notification_channels_check,
    ALTER COLUMN priority TYPE emergency_contacts_priority,
    ALTER COLUMN preferred_contact_method TYPE emergency_contacts_preferred_contact_method,
    ALTER COLUMN verification_status TYPE emergency_contacts_verification_status,
    ALTER COLUMN notification_channels TYPE emergency_contacts_notification_channels;

CREATE DOMAIN follow_up_actions_priority AS varchar(50)
    CONSTRAINT priority_check CHECK (VALUE IN ('LOW', 'MEDIUM', 'HIGH', 'URGENT'));
CREATE DOMAIN follow_up_actions_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('PENDING', 'IN_PROGRESS', 'COMPLETED', 'CANCELLED'));
ALTER TABLE follow_up_actions
    DROP CONSTRAINT follow_up_actions_priority_check,
    DROP CONSTRAINT follow_up_actions_status_check,
    ALTER COLUMN priority TYPE follow_up_actions_priority,
    ALTER COLUMN status TYPE follow_up_actions_status;

CREATE DOMAIN follow_up_appointments_duration_minutes AS integer
    CONSTRAINT duration_minutes_check CHECK (VALUE >= 1);
ALTER TABLE follow_up_appointments
    DROP CONSTRAINT follow_up_appointments_duration_minutes_check,
    ALTER COLUMN duration_minutes TYPE follow_up_appointments_duration_minutes;

CREATE DOMAIN growth_tracking_height AS double precision
    CONSTRAINT height_check CHECK (VALUE >= (0)::double precision);
CREATE DOMAIN growth_tracking_height_unit AS varchar(10)
    CONSTRAINT height_unit_check CHECK (VALUE IN ('inches', 'cm'));
CREATE DOMAIN growth_tracking_weight AS double precision
    CONSTRAINT weight_check CHECK (VALUE >= (0)::double precision);
CREATE DOMAIN growth_tracking_weight_unit AS varchar(10)
    CONSTRAINT weight_unit_check CHECK (VALUE IN ('lbs', 'kg'));
CREATE DOMAIN growth_tracking_bmi AS double precision
    CONSTRAINT bmi_check CHECK (VALUE >= (0)::double precision);
CREATE DOMAIN growth_tracking_percentile_height AS double precision
    CONSTRAINT percentile_height_check
        CHECK ((VALUE >= (0)::double precision) AND (VALUE <= (100)::double precision));
CREATE DOMAIN growth_tracking_percentile_weight AS double precision
    CONSTRAINT percentile_weight_check
        CHECK ((VALUE >= (0)::double precision) AND (VALUE <= (100)::double precision));
CREATE DOMAIN growth_tracking_percentile_bmi AS double precision
    CONSTRAINT percentile_bmi_check
        CHECK ((VALUE >= (0)::double precision) AND (VALUE <= (100)::double precision));
ALTER TABLE growth_tracking
    DROP CONSTRAINT growth_tracking_height_check,
    DROP CONSTRAINT growth_tracking_height_unit_check,
    DROP CONSTRAINT growth_tracking_weight_check,
    DROP CONSTRAINT growth_tracking_weight_unit_check,
    DROP CONSTRAINT growth_tracking_bmi_check,
    DROP CONSTRAINT growth_tracking_percentile_height_check,
    DROP CONSTRAINT growth_tracking_percentile_weight_check,
    DROP CONSTRAINT growth_tracking_percentile_bmi_check,
    ALTER COLUMN height TYPE growth_tracking_height,
    ALTER COLUMN height_unit TYPE growth_tracking_height_unit,
    ALTER COLUMN weight TYPE growth_tracking_weight,
    ALTER COLUMN weight_unit TYPE growth_tracking_weight_unit,
    ALTER COLUMN bmi TYPE growth_tracking_bmi,
    ALTER COLUMN percentile_height TYPE growth_tracking_percentile_height,
    ALTER COLUMN percentile_weight TYPE growth_tracking_percentile_weight,
    ALTER COLUMN percentile_bmi TYPE growth_tracking_percentile_bmi;

CREATE DOMAIN health_metric_snapshots_trend AS varchar(50)
    CONSTRAINT trend_check CHECK (VALUE IN ('INCREASING', 'DECREASING', 'STABLE', 'FLUCTUATING'));
ALTER TABLE health_metric_snapshots
    DROP CONSTRAINT health_metric_snapshots_trend_check,
    ALTER COLUMN trend TYPE health_metric_snapshots_trend;

CREATE DOMAIN incident_reports_type AS varchar(50)
    CONSTRAINT type_check CHECK (VALUE IN ('INJURY', 'ILLNESS', 'BEHAVIORAL', 'MEDICATION_ERROR',
        'ALLERGIC_REACTION', 'EMERGENCY', 'SAFETY', 'OTHER'));
CREATE DOMAIN incident_reports_severity AS varchar(50)
    CONSTRAINT severity_check CHECK (VALUE IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL'));
CREATE DOMAIN incident_reports_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('DRAFT', 'PENDING_REVIEW', 'UNDER_INVESTIGATION',
        'REQUIRES_ACTION', 'RESOLVED', 'CLOSED'));
CREATE DOMAIN incident_reports_insurance_claim_status AS varchar(50)
    CONSTRAINT insurance_claim_status_check CHECK (VALUE IN ('NOT_FILED', 'FILED', 'PENDING',
        'APPROVED', 'DENIED', 'CLOSED'));
CREATE DOMAIN incident_reports_legal_compliance_status AS varchar(50)
    CONSTRAINT legal_compliance_status_check CHECK (VALUE IN ('PENDING', 'COMPLIANT',
        'NON_COMPLIANT', 'UNDER_REVIEW'));
ALTER TABLE incident_reports
    DROP CONSTRAINT incident_reports_type_check,
    DROP CONSTRAINT incident_reports_severity_check,
    DROP CONSTRAINT incident_reports_status_check,
    DROP CONSTRAINT incident_reports_insurance_claim_status_check,
    DROP CONSTRAINT incident_reports_legal_compliance_status_check,
    ALTER COLUMN type TYPE incident_reports_type,
    ALTER COLUMN severity TYPE incident_reports_severity,
    ALTER COLUMN status TYPE incident_reports_status,
    ALTER COLUMN insurance_claim_status TYPE incident_reports_insurance_claim_status,
    ALTER COLUMN legal_compliance_status TYPE incident_reports_legal_compliance_status;

CREATE DOMAIN integration_configs_type AS varchar(50)
    CONSTRAINT type_check CHECK (VALUE IN ('SIS', 'EHR', 'PHARMACY', 'LABORATORY', 'INSURANCE',
        'PARENT_PORTAL', 'HEALTH_APP', 'GOVERNMENT_REPORTING'));
CREATE DOMAIN integration_configs_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('INACTIVE', 'ACTIVE', 'TESTING', 'SYNCING', 'ERROR'));
CREATE DOMAIN integration_configs_sync_frequency AS integer
    CONSTRAINT sync_frequency_check CHECK (VALUE >= 0);
ALTER TABLE integration_configs
    DROP CONSTRAINT integration_configs_type_check,
    DROP CONSTRAINT integration_configs_status_check,
    DROP CONSTRAINT integration_configs_sync_frequency_check,
    ALTER COLUMN type TYPE integration_configs_type,
    ALTER COLUMN status TYPE integration_configs_status,
    ALTER COLUMN sync_frequency TYPE integration_configs_sync_frequency;

CREATE DOMAIN integration_logs_records_processed AS integer
    CONSTRAINT records_processed_check CHECK (VALUE >= 0);
CREATE DOMAIN integration_logs_records_succeeded AS integer
    CONSTRAINT records_succeeded_check CHECK (VALUE >= 0);
CREATE DOMAIN integration_logs_records_failed AS integer
    CONSTRAINT records_failed_check CHECK (VALUE >= 0);
CREATE DOMAIN integration_logs_duration AS integer
    CONSTRAINT duration_check CHECK (VALUE >= 0);
ALTER TABLE integration_logs
    DROP CONSTRAINT integration_logs_records_processed_check,
    DROP CONSTRAINT integration_logs_records_succeeded_check,
    DROP CONSTRAINT integration_logs_records_failed_check,
    DROP CONSTRAINT integration_logs_duration_check,
    ALTER COLUMN records_processed TYPE integration_logs_records_processed,
    ALTER COLUMN records_succeeded TYPE integration_logs_records_succeeded,
    ALTER COLUMN records_failed TYPE integration_logs_records_failed,
    ALTER COLUMN duration TYPE integration_logs_duration;

CREATE DOMAIN inventory_items_unit_cost AS numeric(10,2)
    CONSTRAINT unit_cost_check CHECK (VALUE >= (0)::numeric);
CREATE DOMAIN inventory_items_reorder_level AS integer
    CONSTRAINT reorder_level_check CHECK (VALUE >= 0);
CREATE DOMAIN inventory_items_reorder_quantity AS integer
    CONSTRAINT reorder_quantity_check CHECK (VALUE >= 0);
ALTER TABLE inventory_items
    DROP CONSTRAINT inventory_items_unit_cost_check,
    DROP CONSTRAINT inventory_items_reorder_level_check,
    DROP CONSTRAINT inventory_items_reorder_quantity_check,
    ALTER COLUMN unit_cost TYPE inventory_items_unit_cost,
    ALTER COLUMN reorder_level TYPE inventory_items_reorder_level,
    ALTER COLUMN reorder_quantity TYPE inventory_items_reorder_quantity;

CREATE DOMAIN inventory_transactions_type AS varchar(50)
    CONSTRAINT type_check CHECK (VALUE IN ('PURCHASE', 'USAGE', 'ADJUSTMENT', 'TRANSFER', 'RETURN',
        'DISPOSAL'));
CREATE DOMAIN inventory_transactions_unit_cost AS numeric(10,2)
    CONSTRAINT unit_cost_check CHECK (VALUE >= (0)::numeric);
ALTER TABLE inventory_transactions
    DROP CONSTRAINT inventory_transactions_type_check,
    DROP CONSTRAINT inventory_transactions_unit_cost_check,
    ALTER COLUMN type TYPE inventory_transactions_type,
    ALTER COLUMN unit_cost TYPE inventory_transactions_unit_cost;

CREATE DOMAIN ip_restrictions_type AS varchar(20)
    CONSTRAINT type_check CHECK (VALUE IN ('whitelist', 'blacklist', 'geo_restriction'));
ALTER TABLE ip_restrictions
    DROP CONSTRAINT ip_restrictions_type_check,
    ALTER COLUMN type TYPE ip_restrictions_type;

CREATE DOMAIN lab_results_test_type AS varchar(50)
    CONSTRAINT test_type_check CHECK (VALUE IN ('blood_test', 'urinalysis', 'culture', 'chemistry',
        'hematology', 'microbiology', 'other'));
CREATE DOMAIN lab_results_status AS varchar(20)
    CONSTRAINT status_check CHECK (VALUE IN ('pending', 'completed', 'reviewed', 'cancelled'));
ALTER TABLE lab_results
    DROP CONSTRAINT lab_results_test_type_check,
    DROP CONSTRAINT lab_results_status_check,
    ALTER COLUMN test_type TYPE lab_results_test_type,
    ALTER COLUMN status TYPE lab_results_status;

CREATE DOMAIN licenses_type AS varchar(50)
    CONSTRAINT type_check CHECK (VALUE IN ('TRIAL', 'BASIC', 'PROFESSIONAL', 'ENTERPRISE'));
CREATE DOMAIN licenses_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('ACTIVE', 'EXPIRED', 'SUSPENDED', 'CANCELLED'));
CREATE DOMAIN licenses_max_users AS integer
    CONSTRAINT max_users_check CHECK (VALUE >= 0);
CREATE DOMAIN licenses_max_schools AS integer
    CONSTRAINT max_schools_check CHECK (VALUE >= 0);
ALTER TABLE licenses
    DROP CONSTRAINT licenses_type_check,
    DROP CONSTRAINT licenses_status_check,
    DROP CONSTRAINT licenses_max_users_check,
    DROP CONSTRAINT licenses_max_schools_check,
    ALTER COLUMN type TYPE licenses_type,
    ALTER COLUMN status TYPE licenses_status,
    ALTER COLUMN max_users TYPE licenses_max_users,
    ALTER COLUMN max_schools TYPE licenses_max_schools;

CREATE DOMAIN maintenance_logs_type AS varchar(50)
    CONSTRAINT type_check CHECK (VALUE IN ('CALIBRATION', 'REPAIR', 'INSPECTION', 'CLEANING',
        'REPLACEMENT', 'UPGRADE'));
CREATE DOMAIN maintenance_logs_cost AS numeric(10,2)
    CONSTRAINT cost_check CHECK (VALUE >= (0)::numeric);
ALTER TABLE maintenance_logs
    DROP CONSTRAINT maintenance_logs_type_check,
    DROP CONSTRAINT maintenance_logs_cost_check,
    ALTER COLUMN type TYPE maintenance_logs_type,
    ALTER COLUMN cost TYPE maintenance_logs_cost;

CREATE DOMAIN medical_history_record_type AS varchar(30)
    CONSTRAINT record_type_check CHECK (VALUE IN ('condition', 'allergy', 'surgery',
        'hospitalization', 'family_history', 'other'));
CREATE DOMAIN medical_history_severity AS varchar(20)
    CONSTRAINT severity_check CHECK (VALUE IN ('mild', 'moderate', 'severe', 'critical'));
CREATE DOMAIN medical_history_category AS varchar(20)
    CONSTRAINT category_check CHECK (VALUE IN ('chronic', 'acute', 'genetic', 'infectious',
        'autoimmune', 'other'));
CREATE DOMAIN medical_history_family_relation AS varchar(20)
    CONSTRAINT family_relation_check CHECK (VALUE IN ('mother', 'father', 'sibling', 'grandparent',
        'aunt', 'uncle', 'cousin', 'other'));
ALTER TABLE medical_history
    DROP CONSTRAINT medical_history_record_type_check,
    DROP CONSTRAINT medical_history_severity_check,
    DROP CONSTRAINT medical_history_category_check,
    DROP CONSTRAINT medical_history_family_relation_check,
    ALTER COLUMN record_type TYPE medical_history_record_type,
    ALTER COLUMN severity TYPE medical_history_severity,
    ALTER COLUMN category TYPE medical_history_category,
    ALTER COLUMN family_relation TYPE medical_history_family_relation;

CREATE DOMAIN medication_logs_dosage AS numeric(10,2)
    CONSTRAINT dosage_check CHECK (VALUE >= (0)::numeric);
CREATE DOMAIN medication_logs_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('PENDING', 'ADMINISTERED', 'MISSED', 'CANCELLED',
        'REFUSED'));
ALTER TABLE medication_logs
    DROP CONSTRAINT medication_logs_dosage_check,
    DROP CONSTRAINT medication_logs_status_check,
    ALTER COLUMN dosage TYPE medication_logs_dosage,
    ALTER COLUMN status TYPE medication_logs_status;

CREATE DOMAIN medications_dea_schedule AS varchar(5)
    CONSTRAINT dea_schedule_check CHECK (VALUE IN ('I', 'II', 'III', 'IV', 'V'));
ALTER TABLE medications
    DROP CONSTRAINT medications_dea_schedule_check,
    ALTER COLUMN dea_schedule TYPE medications_dea_schedule;

CREATE DOMAIN mental_health_records_record_type AS varchar(50)
    CONSTRAINT record_type_check CHECK (VALUE IN ('ASSESSMENT', 'COUNSELING_SESSION',
        'CRISIS_INTERVENTION', 'THERAPY_SESSION', 'PSYCHIATRIC_EVALUATION', 'SCREENING',
        'FOLLOW_UP', 'REFERRAL', 'PROGRESS_NOTE'));
CREATE DOMAIN mental_health_records_risk_level AS varchar(50)
    CONSTRAINT risk_level_check CHECK (VALUE IN ('NONE', 'LOW', 'MODERATE', 'HIGH', 'CRITICAL'));
CREATE DOMAIN mental_health_records_confidentiality_level AS varchar(20)
    CONSTRAINT confidentiality_level_check CHECK (VALUE IN ('STANDARD', 'ENHANCED', 'MAXIMUM'));
ALTER TABLE mental_health_records
    DROP CONSTRAINT mental_health_records_record_type_check,
    DROP CONSTRAINT mental_health_records_risk_level_check,
    DROP CONSTRAINT mental_health_records_confidentiality_level_check,
    ALTER COLUMN record_type TYPE mental_health_records_record_type,
    ALTER COLUMN risk_level TYPE mental_health_records_risk_level,
    ALTER COLUMN confidentiality_level TYPE mental_health_records_confidentiality_level;

CREATE DOMAIN message_deliveries_recipient_type AS varchar(50)
    CONSTRAINT recipient_type_check CHECK (VALUE IN ('NURSE', 'PARENT', 'GUARDIAN',
        'EMERGENCY_CONTACT', 'STUDENT', 'STAFF', 'ADMINISTRATOR'));
CREATE DOMAIN message_deliveries_channel AS varchar(50)
    CONSTRAINT channel_check CHECK (VALUE IN ('EMAIL', 'SMS', 'PUSH', 'IN_APP'));
CREATE DOMAIN message_deliveries_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('PENDING', 'SENT', 'DELIVERED', 'FAILED', 'BOUNCED'));
ALTER TABLE message_deliveries
    DROP CONSTRAINT message_deliveries_recipient_type_check,
    DROP CONSTRAINT message_deliveries_channel_check,
    DROP CONSTRAINT message_deliveries_status_check,
    ALTER COLUMN recipient_type TYPE message_deliveries_recipient_type,
    ALTER COLUMN channel TYPE message_deliveries_channel,
    ALTER COLUMN status TYPE message_deliveries_status;

CREATE DOMAIN message_templates_type AS varchar(50)
    CONSTRAINT type_check CHECK (VALUE IN ('EMAIL', 'SMS', 'PUSH_NOTIFICATION', 'VOICE'));
CREATE DOMAIN message_templates_category AS varchar(50)
    CONSTRAINT category_check CHECK (VALUE IN ('APPOINTMENT', 'MEDICATION', 'EMERGENCY',
        'NOTIFICATION', 'REMINDER'));
ALTER TABLE message_templates
    DROP CONSTRAINT message_templates_type_check,
    DROP CONSTRAINT message_templates_category_check,
    ALTER COLUMN type TYPE message_templates_type,
    ALTER COLUMN category TYPE message_templates_category;

CREATE DOMAIN messages_priority AS varchar(50)
    CONSTRAINT priority_check CHECK (VALUE IN ('LOW', 'MEDIUM', 'HIGH', 'URGENT'));
CREATE DOMAIN messages_category AS varchar(50)
    CONSTRAINT category_check CHECK (VALUE IN ('EMERGENCY', 'HEALTH_UPDATE', 'APPOINTMENT_REMINDER',
        'MEDICATION_REMINDER', 'GENERAL', 'INCIDENT_NOTIFICATION', 'COMPLIANCE'));
CREATE DOMAIN messages_recipient_count AS integer
    CONSTRAINT recipient_count_check CHECK (VALUE >= 0);
ALTER TABLE messages
    DROP CONSTRAINT messages_priority_check,
    DROP CONSTRAINT messages_category_check,
    DROP CONSTRAINT messages_recipient_count_check,
    ALTER COLUMN priority TYPE messages_priority,
    ALTER COLUMN category TYPE messages_category,
    ALTER COLUMN recipient_count TYPE messages_recipient_count;

CREATE DOMAIN performance_metrics_metric_type AS varchar(50)
    CONSTRAINT metric_type_check CHECK (VALUE IN ('CPU_USAGE', 'MEMORY_USAGE', 'DISK_USAGE',
        'API_RESPONSE_TIME', 'DATABASE_QUERY_TIME', 'ACTIVE_USERS', 'ERROR_RATE', 'REQUEST_COUNT'));
ALTER TABLE performance_metrics
    DROP CONSTRAINT performance_metrics_metric_type_check,
    ALTER COLUMN metric_type TYPE performance_metrics_metric_type;

CREATE DOMAIN phi_disclosures_disclosure_type AS varchar(50)
    CONSTRAINT disclosure_type_check CHECK (VALUE IN ('TREATMENT', 'PAYMENT',
        'HEALTHCARE_OPERATIONS', 'AUTHORIZATION', 'REQUIRED_BY_LAW', 'PUBLIC_HEALTH', 'RESEARCH'));
CREATE DOMAIN phi_disclosures_purpose AS varchar(50)
    CONSTRAINT purpose_check CHECK (VALUE IN ('TREATMENT', 'PAYMENT', 'OPERATIONS',
        'LEGAL_REQUIREMENT', 'PUBLIC_HEALTH', 'RESEARCH', 'PATIENT_REQUEST'));
CREATE DOMAIN phi_disclosures_method AS varchar(50)
    CONSTRAINT method_check CHECK (VALUE IN ('VERBAL', 'WRITTEN', 'ELECTRONIC', 'FAX', 'PHONE'));
CREATE DOMAIN phi_disclosures_recipient_type AS varchar(50)
    CONSTRAINT recipient_type_check CHECK (VALUE IN ('HEALTHCARE_PROVIDER', 'INSURANCE',
        'PARENT_GUARDIAN', 'SCHOOL_OFFICIAL', 'GOVERNMENT_AGENCY', 'RESEARCHER', 'OTHER'));
ALTER TABLE phi_disclosures
    DROP CONSTRAINT phi_disclosures_disclosure_type_check,
    DROP CONSTRAINT phi_disclosures_purpose_check,
    DROP CONSTRAINT phi_disclosures_method_check,
    DROP CONSTRAINT phi_disclosures_recipient_type_check,
    ALTER COLUMN disclosure_type TYPE phi_disclosures_disclosure_type,
    ALTER COLUMN purpose TYPE phi_disclosures_purpose,
    ALTER COLUMN method TYPE phi_disclosures_method,
    ALTER COLUMN recipient_type TYPE phi_disclosures_recipient_type;

CREATE DOMAIN policy_documents_category AS varchar(50)
    CONSTRAINT category_check CHECK (VALUE IN ('HIPAA_PRIVACY', 'HIPAA_SECURITY', 'FERPA',
        'DATA_RETENTION', 'INCIDENT_RESPONSE', 'ACCESS_CONTROL', 'TRAINING'));
CREATE DOMAIN policy_documents_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('DRAFT', 'ACTIVE', 'ARCHIVED', 'SUPERSEDED'));
ALTER TABLE policy_documents
    DROP CONSTRAINT policy_documents_category_check,
    DROP CONSTRAINT policy_documents_status_check,
    ALTER COLUMN category TYPE policy_documents_category,
    ALTER COLUMN status TYPE policy_documents_status;

CREATE DOMAIN prescriptions_quantity AS integer
    CONSTRAINT quantity_check CHECK (VALUE >= 0);
CREATE DOMAIN prescriptions_quantity_filled AS integer
    CONSTRAINT quantity_filled_check CHECK (VALUE >= 0);
CREATE DOMAIN prescriptions_refills_authorized AS integer
    CONSTRAINT refills_authorized_check CHECK (VALUE >= 0);
CREATE DOMAIN prescriptions_refills_used AS integer
    CONSTRAINT refills_used_check CHECK (VALUE >= 0);
ALTER TABLE prescriptions
    DROP CONSTRAINT prescriptions_quantity_check,
    DROP CONSTRAINT prescriptions_quantity_filled_check,
    DROP CONSTRAINT prescriptions_refills_authorized_check,
    DROP CONSTRAINT prescriptions_refills_used_check,
    ALTER COLUMN quantity TYPE prescriptions_quantity,
    ALTER COLUMN quantity_filled TYPE prescriptions_quantity_filled,
    ALTER COLUMN refills_authorized TYPE prescriptions_refills_authorized,
    ALTER COLUMN refills_used TYPE prescriptions_refills_used;

CREATE DOMAIN purchase_order_items_quantity AS integer
    CONSTRAINT quantity_check CHECK (VALUE >= 1);
CREATE DOMAIN purchase_order_items_unit_cost AS numeric(10,2)
    CONSTRAINT unit_cost_check CHECK (VALUE >= (0)::numeric);
CREATE DOMAIN purchase_order_items_total_cost AS numeric(12,2)
    CONSTRAINT total_cost_check CHECK (VALUE >= (0)::numeric);
ALTER TABLE purchase_order_items
    DROP CONSTRAINT purchase_order_items_quantity_check,
    DROP CONSTRAINT purchase_order_items_unit_cost_check,
    DROP CONSTRAINT purchase_order_items_total_cost_check,
    ALTER COLUMN quantity TYPE purchase_order_items_quantity,
    ALTER COLUMN unit_cost TYPE purchase_order_items_unit_cost,
    ALTER COLUMN total_cost TYPE purchase_order_items_total_cost;

CREATE DOMAIN purchase_orders_subtotal AS numeric(12,2)
    CONSTRAINT subtotal_check CHECK (VALUE >= (0)::numeric);
CREATE DOMAIN purchase_orders_tax AS numeric(12,2)
    CONSTRAINT tax_check CHECK (VALUE >= (0)::numeric);
CREATE DOMAIN purchase_orders_shipping AS numeric(12,2)
    CONSTRAINT shipping_check CHECK (VALUE >= (0)::numeric);
CREATE DOMAIN purchase_orders_total AS numeric(12,2)
    CONSTRAINT total_check CHECK (VALUE >= (0)::numeric);
CREATE DOMAIN purchase_orders_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('PENDING', 'APPROVED', 'ORDERED', 'PARTIALLY_RECEIVED',
        'RECEIVED', 'CANCELLED'));
ALTER TABLE purchase_orders
    DROP CONSTRAINT purchase_orders_subtotal_check,
    DROP CONSTRAINT purchase_orders_tax_check,
    DROP CONSTRAINT purchase_orders_shipping_check,
    DROP CONSTRAINT purchase_orders_total_check,
    DROP CONSTRAINT purchase_orders_status_check,
    ALTER COLUMN subtotal TYPE purchase_orders_subtotal,
    ALTER COLUMN tax TYPE purchase_orders_tax,
    ALTER COLUMN shipping TYPE purchase_orders_shipping,
    ALTER COLUMN total TYPE purchase_orders_total,
    ALTER COLUMN status TYPE purchase_orders_status;

CREATE DOMAIN push_notifications_category AS varchar(50)
    CONSTRAINT category_check CHECK (VALUE IN ('MEDICATION', 'APPOINTMENT', 'INCIDENT', 'SCREENING',
        'IMMUNIZATION', 'MESSAGE', 'EMERGENCY', 'REMINDER', 'ALERT', 'SYSTEM'));
CREATE DOMAIN push_notifications_priority AS varchar(50)
    CONSTRAINT priority_check CHECK (VALUE IN ('CRITICAL', 'HIGH', 'NORMAL', 'LOW'));
CREATE DOMAIN push_notifications_badge AS integer
    CONSTRAINT badge_check CHECK (VALUE >= 0);
CREATE DOMAIN push_notifications_ttl AS integer
    CONSTRAINT ttl_check CHECK (VALUE >= 0);
CREATE DOMAIN push_notifications_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('PENDING', 'SCHEDULED', 'SENDING', 'DELIVERED',
        'FAILED', 'EXPIRED'));
CREATE DOMAIN push_notifications_total_recipients AS integer
    CONSTRAINT total_recipients_check CHECK (VALUE >= 0);
CREATE DOMAIN push_notifications_successful_deliveries AS integer
    CONSTRAINT successful_deliveries_check CHECK (VALUE >= 0);
CREATE DOMAIN push_notifications_failed_deliveries AS integer
    CONSTRAINT failed_deliveries_check CHECK (VALUE >= 0);
CREATE DOMAIN push_notifications_clicked_count AS integer
    CONSTRAINT clicked_count_check CHECK (VALUE >= 0);
CREATE DOMAIN push_notifications_dismissed_count AS integer
    CONSTRAINT dismissed_count_check CHECK (VALUE >= 0);
CREATE DOMAIN push_notifications_retry_count AS integer
    CONSTRAINT retry_count_check CHECK (VALUE >= 0);
CREATE DOMAIN push_notifications_max_retries AS integer
    CONSTRAINT max_retries_check CHECK (VALUE >= 0);
ALTER TABLE push_notifications
    DROP CONSTRAINT push_notifications_category_check,
    DROP CONSTRAINT push_notifications_priority_check,
    DROP CONSTRAINT push_notifications_badge_check,
    DROP CONSTRAINT push_notifications_ttl_check,
    DROP CONSTRAINT push_notifications_status_check,
    DROP CONSTRAINT push_notifications_total_recipients_check,
    DROP CONSTRAINT push_notifications_successful_deliveries_check,
    DROP CONSTRAINT push_notifications_failed_deliveries_check,
    DROP CONSTRAINT push_notifications_clicked_count_check,
    DROP CONSTRAINT push_notifications_dismissed_count_check,
    DROP CONSTRAINT push_notifications_retry_count_check,
    DROP CONSTRAINT push_notifications_max_retries_check,
    ALTER COLUMN category TYPE push_notifications_category,
    ALTER COLUMN priority TYPE push_notifications_priority,
    ALTER COLUMN badge TYPE push_notifications_badge,
    ALTER COLUMN ttl TYPE push_notifications_ttl,
    ALTER COLUMN status TYPE push_notifications_status,
    ALTER COLUMN total_recipients TYPE push_notifications_total_recipients,
    ALTER COLUMN successful_deliveries TYPE push_notifications_successful_deliveries,
    ALTER COLUMN failed_deliveries TYPE push_notifications_failed_deliveries,
    ALTER COLUMN clicked_count TYPE push_notifications_clicked_count,
    ALTER COLUMN dismissed_count TYPE push_notifications_dismissed_count,
    ALTER COLUMN retry_count TYPE push_notifications_retry_count,
    ALTER COLUMN max_retries TYPE push_notifications_max_retries;

CREATE DOMAIN remediation_actions_priority AS varchar(50)
    CONSTRAINT priority_check CHECK (VALUE IN ('LOW', 'MEDIUM', 'HIGH', 'URGENT'));
CREATE DOMAIN remediation_actions_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('PLANNED', 'IN_PROGRESS', 'COMPLETED', 'VERIFIED',
        'DEFERRED'));
ALTER TABLE remediation_actions
    DROP CONSTRAINT remediation_actions_priority_check,
    DROP CONSTRAINT remediation_actions_status_check,
    ALTER COLUMN priority TYPE remediation_actions_priority,
    ALTER COLUMN status TYPE remediation_actions_status;

CREATE DOMAIN report_executions_report_type AS varchar(50)
    CONSTRAINT report_type_check CHECK (VALUE IN ('HEALTH_REPORT', 'MEDICATION_REPORT',
        'INCIDENT_REPORT', 'COMPLIANCE_REPORT', 'ANALYTICS_REPORT'));
CREATE DOMAIN report_executions_output_format AS varchar(50)
    CONSTRAINT output_format_check CHECK (VALUE IN ('PDF', 'CSV', 'XLSX', 'JSON'));
CREATE DOMAIN report_executions_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('pending', 'generating', 'completed', 'failed'));
CREATE DOMAIN report_executions_file_size AS bigint
    CONSTRAINT file_size_check CHECK (VALUE >= 0);
CREATE DOMAIN report_executions_record_count AS integer
    CONSTRAINT record_count_check CHECK (VALUE >= 0);
CREATE DOMAIN report_executions_execution_time_ms AS integer
    CONSTRAINT execution_time_ms_check CHECK (VALUE >= 0);
ALTER TABLE report_executions
    DROP CONSTRAINT report_executions_report_type_check,
    DROP CONSTRAINT report_executions_output_format_check,
    DROP CONSTRAINT report_executions_status_check,
    DROP CONSTRAINT report_executions_file_size_check,
    DROP CONSTRAINT report_executions_record_count_check,
    DROP CONSTRAINT report_executions_execution_time_ms_check,
    ALTER COLUMN report_type TYPE report_executions_report_type,
    ALTER COLUMN output_format TYPE report_executions_output_format,
    ALTER COLUMN status TYPE report_executions_status,
    ALTER COLUMN file_size TYPE report_executions_file_size,
    ALTER COLUMN record_count TYPE report_executions_record_count,
    ALTER COLUMN execution_time_ms TYPE report_executions_execution_time_ms;

CREATE DOMAIN report_schedules_report_type AS varchar(50)
    CONSTRAINT report_type_check CHECK (VALUE IN ('HEALTH_REPORT', 'MEDICATION_REPORT',
        'INCIDENT_REPORT', 'COMPLIANCE_REPORT', 'ANALYTICS_REPORT'));
CREATE DOMAIN report_schedules_frequency AS varchar(50)
    CONSTRAINT frequency_check CHECK (VALUE IN ('daily', 'weekly', 'monthly', 'quarterly',
        'custom'));
CREATE DOMAIN report_schedules_output_format AS varchar(50)
    CONSTRAINT output_format_check CHECK (VALUE IN ('PDF', 'CSV', 'XLSX', 'JSON'));
CREATE DOMAIN report_schedules_execution_count AS integer
    CONSTRAINT execution_count_check CHECK (VALUE >= 0);
CREATE DOMAIN report_schedules_failure_count AS integer
    CONSTRAINT failure_count_check CHECK (VALUE >= 0);
ALTER TABLE report_schedules
    DROP CONSTRAINT report_schedules_report_type_check,
    DROP CONSTRAINT report_schedules_frequency_check,
    DROP CONSTRAINT report_schedules_output_format_check,
    DROP CONSTRAINT report_schedules_execution_count_check,
    DROP CONSTRAINT report_schedules_failure_count_check,
    ALTER COLUMN report_type TYPE report_schedules_report_type,
    ALTER COLUMN frequency TYPE report_schedules_frequency,
    ALTER COLUMN output_format TYPE report_schedules_output_format,
    ALTER COLUMN execution_count TYPE report_schedules_execution_count,
    ALTER COLUMN failure_count TYPE report_schedules_failure_count;

CREATE DOMAIN report_templates_report_type AS varchar(50)
    CONSTRAINT report_type_check CHECK (VALUE IN ('health_trends', 'medication_usage',
        'incident_statistics', 'attendance_correlation', 'compliance', 'dashboard', 'performance',
        'custom'));
CREATE DOMAIN report_templates_default_output_format AS varchar(50)
    CONSTRAINT default_output_format_check CHECK (VALUE IN ('pdf', 'excel', 'csv', 'json'));
ALTER TABLE report_templates
    DROP CONSTRAINT report_templates_report_type_check,
    DROP CONSTRAINT report_templates_default_output_format_check,
    ALTER COLUMN report_type TYPE report_templates_report_type,
    ALTER COLUMN default_output_format TYPE report_templates_default_output_format;

CREATE DOMAIN schools_total_enrollment AS integer
    CONSTRAINT total_enrollment_check CHECK (VALUE >= 0);
ALTER TABLE schools
    DROP CONSTRAINT schools_total_enrollment_check,
    ALTER COLUMN total_enrollment TYPE schools_total_enrollment;

CREATE DOMAIN security_incidents_type AS varchar(50)
    CONSTRAINT type_check CHECK (VALUE IN ('unauthorized_access', 'brute_force_attack',
        'suspicious_activity', 'data_breach_attempt', 'privilege_escalation',
        'sql_injection_attempt', 'xss_attempt', 'account_takeover', 'malware_detected',
        'ddos_attempt', 'policy_violation', 'other'));
CREATE DOMAIN security_incidents_severity AS varchar(20)
    CONSTRAINT severity_check CHECK (VALUE IN ('low', 'medium', 'high', 'critical'));
CREATE DOMAIN security_incidents_status AS varchar(20)
    CONSTRAINT status_check CHECK (VALUE IN ('detected', 'investigating', 'contained', 'resolved',
        'false_positive'));
ALTER TABLE security_incidents
    DROP CONSTRAINT security_incidents_type_check,
    DROP CONSTRAINT security_incidents_severity_check,
    DROP CONSTRAINT security_incidents_status_check,
    ALTER COLUMN type TYPE security_incidents_type,
    ALTER COLUMN severity TYPE security_incidents_severity,
    ALTER COLUMN status TYPE security_incidents_status;

CREATE DOMAIN sis_sync_conflicts_resolution AS varchar(50)
    CONSTRAINT resolution_check CHECK (VALUE IN ('KEEP_LOCAL', 'KEEP_SIS'));
ALTER TABLE sis_sync_conflicts
    DROP CONSTRAINT sis_sync_conflicts_resolution_check,
    ALTER COLUMN resolution TYPE sis_sync_conflicts_resolution;

CREATE DOMAIN student_medications_refills_remaining AS integer
    CONSTRAINT refills_remaining_check CHECK (VALUE >= 0);
ALTER TABLE student_medications
    DROP CONSTRAINT student_medications_refills_remaining_check,
    ALTER COLUMN refills_remaining TYPE student_medications_refills_remaining;

CREATE DOMAIN students_gender AS varchar(20)
    CONSTRAINT gender_check CHECK (VALUE IN ('MALE', 'FEMALE', 'OTHER', 'PREFER_NOT_TO_SAY'));
ALTER TABLE students
    DROP CONSTRAINT students_gender_check,
    ALTER COLUMN gender TYPE students_gender;

CREATE DOMAIN sync_conflicts_entity_type AS varchar(50)
    CONSTRAINT entity_type_check CHECK (VALUE IN ('STUDENT', 'HEALTH_RECORD', 'MEDICATION',
        'INCIDENT', 'VACCINATION', 'APPOINTMENT', 'SCREENING', 'ALLERGY', 'CHRONIC_CONDITION'));
CREATE DOMAIN sync_conflicts_resolution AS varchar(50)
    CONSTRAINT resolution_check CHECK (VALUE IN ('CLIENT_WINS', 'SERVER_WINS', 'NEWEST_WINS',
        'MERGE', 'MANUAL'));
CREATE DOMAIN sync_conflicts_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('PENDING', 'RESOLVED', 'DEFERRED'));
ALTER TABLE sync_conflicts
    DROP CONSTRAINT sync_conflicts_entity_type_check,
    DROP CONSTRAINT sync_conflicts_resolution_check,
    DROP CONSTRAINT sync_conflicts_status_check,
    ALTER COLUMN entity_type TYPE sync_conflicts_entity_type,
    ALTER COLUMN resolution TYPE sync_conflicts_resolution,
    ALTER COLUMN status TYPE sync_conflicts_status;

CREATE DOMAIN sync_queue_items_action_type AS varchar(50)
    CONSTRAINT action_type_check CHECK (VALUE IN ('CREATE', 'UPDATE', 'DELETE', 'READ'));
CREATE DOMAIN sync_queue_items_entity_type AS varchar(50)
    CONSTRAINT entity_type_check CHECK (VALUE IN ('STUDENT', 'HEALTH_RECORD', 'MEDICATION',
        'INCIDENT', 'VACCINATION', 'APPOINTMENT', 'SCREENING', 'ALLERGY', 'CHRONIC_CONDITION'));
CREATE DOMAIN sync_queue_items_attempts AS integer
    CONSTRAINT attempts_check CHECK (VALUE >= 0);
CREATE DOMAIN sync_queue_items_max_attempts AS integer
    CONSTRAINT max_attempts_check CHECK (VALUE >= 0);
CREATE DOMAIN sync_queue_items_conflict_resolution AS varchar(50)
    CONSTRAINT conflict_resolution_check CHECK (VALUE IN ('CLIENT_WINS', 'SERVER_WINS',
        'NEWEST_WINS', 'MERGE', 'MANUAL'));
CREATE DOMAIN sync_queue_items_priority AS varchar(50)
    CONSTRAINT priority_check CHECK (VALUE IN ('HIGH', 'NORMAL', 'LOW'));
ALTER TABLE sync_queue_items
    DROP CONSTRAINT sync_queue_items_action_type_check,
    DROP CONSTRAINT sync_queue_items_entity_type_check,
    DROP CONSTRAINT sync_queue_items_attempts_check,
    DROP CONSTRAINT sync_queue_items_max_attempts_check,
    DROP CONSTRAINT sync_queue_items_conflict_resolution_check,
    DROP CONSTRAINT sync_queue_items_priority_check,
    ALTER COLUMN action_type TYPE sync_queue_items_action_type,
    ALTER COLUMN entity_type TYPE sync_queue_items_entity_type,
    ALTER COLUMN attempts TYPE sync_queue_items_attempts,
    ALTER COLUMN max_attempts TYPE sync_queue_items_max_attempts,
    ALTER COLUMN conflict_resolution TYPE sync_queue_items_conflict_resolution,
    ALTER COLUMN priority TYPE sync_queue_items_priority;

CREATE DOMAIN sync_sessions_status AS varchar(50)
    CONSTRAINT status_check CHECK (VALUE IN ('PENDING', 'IN_PROGRESS', 'COMPLETED', 'PARTIAL',
        'FAILED'));
CREATE DOMAIN sync_sessions_direction AS varchar(50)
    CONSTRAINT direction_check CHECK (VALUE IN ('PULL', 'PUSH', 'BIDIRECTIONAL'));
CREATE DOMAIN sync_sessions_records_processed AS integer
    CONSTRAINT records_processed_check CHECK (VALUE >= 0);
CREATE DOMAIN sync_sessions_records_successful AS integer
    CONSTRAINT records_successful_check CHECK (VALUE >= 0);
CREATE DOMAIN sync_sessions_records_failed AS integer
    CONSTRAINT records_failed_check CHECK (VALUE >= 0);
ALTER TABLE sync_sessions
    DROP CONSTRAINT sync_sessions_status_check,
    DROP CONSTRAINT sync_sessions_direction_check,
    DROP CONSTRAINT sync_sessions_records_processed_check,
    DROP CONSTRAINT sync_sessions_records_successful_check,
    DROP CONSTRAINT sync_sessions_records_failed_check,
    ALTER COLUMN status TYPE sync_sessions_status,
    ALTER COLUMN direction TYPE sync_sessions_direction,
    ALTER COLUMN records_processed TYPE sync_sessions_records_processed,
    ALTER COLUMN records_successful TYPE sync_sessions_records_successful,
    ALTER COLUMN records_failed TYPE sync_sessions_records_failed;

CREATE DOMAIN system_configurations_category AS varchar(50)
    CONSTRAINT category_check CHECK (VALUE IN ('GENERAL', 'SECURITY', 'NOTIFICATION', 'INTEGRATION',
        'BACKUP', 'PERFORMANCE', 'HEALTHCARE', 'MEDICATION', 'APPOINTMENTS', 'UI', 'QUERY',
        'FILE_UPLOAD', 'RATE_LIMITING', 'SESSION', 'EMAIL'));
CREATE DOMAIN system_configurations_value_type AS varchar(50)
    CONSTRAINT value_type_check CHECK (VALUE IN ('STRING', 'NUMBER', 'BOOLEAN', 'JSON', 'ARRAY',
        'DATE', 'TIME', 'DATETIME', 'EMAIL', 'URL', 'COLOR', 'ENUM'));
CREATE DOMAIN system_configurations_scope AS varchar(50)
    CONSTRAINT scope_check CHECK (VALUE IN ('SYSTEM', 'DISTRICT', 'SCHOOL', 'USER'));
ALTER TABLE system_configurations
    DROP CONSTRAINT system_configurations_category_check,
    DROP CONSTRAINT system_configurations_value_type_check,
    DROP CONSTRAINT system_configurations_scope_check,
    ALTER COLUMN category TYPE system_configurations_category,
    ALTER COLUMN value_type TYPE system_configurations_value_type,
    ALTER COLUMN scope TYPE system_configurations_scope;

CREATE DOMAIN training_modules_duration AS integer
    CONSTRAINT duration_check CHECK (VALUE >= 0);
CREATE DOMAIN training_modules_category AS varchar(50)
    CONSTRAINT category_check CHECK (VALUE IN ('HIPAA_COMPLIANCE', 'MEDICATION_MANAGEMENT',
        'EMERGENCY_PROCEDURES', 'SYSTEM_TRAINING', 'SAFETY_PROTOCOLS', 'DATA_SECURITY'));
CREATE DOMAIN training_modules_completion_count AS integer
    CONSTRAINT completion_count_check CHECK (VALUE >= 0);
ALTER TABLE training_modules
    DROP CONSTRAINT training_modules_duration_check,
    DROP CONSTRAINT training_modules_category_check,
    DROP CONSTRAINT training_modules_completion_count_check,
    ALTER COLUMN duration TYPE training_modules_duration,
    ALTER COLUMN category TYPE training_modules_category,
    ALTER COLUMN completion_count TYPE training_modules_completion_count;

CREATE DOMAIN vaccinations_vaccine_type AS varchar(50)
    CONSTRAINT vaccine_type_check CHECK (VALUE IN ('COVID_19', 'FLU', 'MEASLES', 'MUMPS', 'RUBELLA',
        'MMR', 'POLIO', 'HEPATITIS_A', 'HEPATITIS_B', 'VARICELLA', 'TETANUS', 'DIPHTHERIA',
        'PERTUSSIS', 'TDAP', 'DTAP', 'HIB', 'PNEUMOCOCCAL', 'ROTAVIRUS', 'MENINGOCOCCAL', 'HPV',
        'OTHER'));
CREATE DOMAIN vaccinations_dose_number AS integer
    CONSTRAINT dose_number_check CHECK (VALUE >= 1);
CREATE DOMAIN vaccinations_total_doses AS integer
    CONSTRAINT total_doses_check CHECK (VALUE >= 1);
CREATE DOMAIN vaccinations_site_of_administration AS varchar(50)
    CONSTRAINT site_of_administration_check CHECK (VALUE IN ('ARM_LEFT', 'ARM_RIGHT', 'THIGH_LEFT',
        'THIGH_RIGHT', 'DELTOID_LEFT', 'DELTOID_RIGHT', 'BUTTOCK_LEFT', 'BUTTOCK_RIGHT', 'ORAL',
        'NASAL', 'OTHER'));
CREATE DOMAIN vaccinations_route_of_administration AS varchar(50)
    CONSTRAINT route_of_administration_check CHECK (VALUE IN ('INTRAMUSCULAR', 'SUBCUTANEOUS',
        'INTRADERMAL', 'ORAL', 'INTRANASAL', 'INTRAVENOUS', 'OTHER'));
CREATE DOMAIN vaccinations_compliance_status AS varchar(50)
    CONSTRAINT compliance_status_check CHECK (VALUE IN ('COMPLIANT', 'OVERDUE',
        'PARTIALLY_COMPLIANT', 'EXEMPT', 'NON_COMPLIANT'));
ALTER TABLE vaccinations
    DROP CONSTRAINT vaccinations_vaccine_type_check,
    DROP CONSTRAINT vaccinations_dose_number_check,
    DROP CONSTRAINT vaccinations_total_doses_check,
    DROP CONSTRAINT vaccinations_site_of_administration_check,
    DROP CONSTRAINT vaccinations_route_of_administration_check,
    DROP CONSTRAINT vaccinations_compliance_status_check,
    ALTER COLUMN vaccine_type TYPE vaccinations_vaccine_type,
    ALTER COLUMN dose_number TYPE vaccinations_dose_number,
    ALTER COLUMN total_doses TYPE vaccinations_total_doses,
    ALTER COLUMN site_of_administration TYPE vaccinations_site_of_administration,
    ALTER COLUMN route_of_administration TYPE vaccinations_route_of_administration,
    ALTER COLUMN compliance_status TYPE vaccinations_compliance_status;

CREATE DOMAIN vendors_rating AS numeric(3,2)
    CONSTRAINT rating_check CHECK ((VALUE >= (0)::numeric) AND (VALUE <= (5)::numeric));
ALTER TABLE vendors
    DROP CONSTRAINT vendors_rating_check,
    ALTER COLUMN rating TYPE vendors_rating;

CREATE DOMAIN vital_signs_temperature AS double precision
    CONSTRAINT temperature_check
        CHECK ((VALUE >= (0)::double precision) AND (VALUE <= (120)::double precision));
CREATE DOMAIN vital_signs_temperature_unit AS varchar(10)
    CONSTRAINT temperature_unit_check CHECK (VALUE IN ('F', 'C'));
CREATE DOMAIN vital_signs_heart_rate AS integer
    CONSTRAINT heart_rate_check CHECK ((VALUE >= 0) AND (VALUE <= 400));
CREATE DOMAIN vital_signs_respiratory_rate AS integer
    CONSTRAINT respiratory_rate_check CHECK ((VALUE >= 0) AND (VALUE <= 200));
CREATE DOMAIN vital_signs_blood_pressure_systolic AS integer
    CONSTRAINT blood_pressure_systolic_check CHECK ((VALUE >= 0) AND (VALUE <= 400));
CREATE DOMAIN vital_signs_blood_pressure_diastolic AS integer
    CONSTRAINT blood_pressure_diastolic_check CHECK ((VALUE >= 0) AND (VALUE <= 300));
CREATE DOMAIN vital_signs_oxygen_saturation AS double precision
    CONSTRAINT oxygen_saturation_check
        CHECK ((VALUE >= (0)::double precision) AND (VALUE <= (100)::double precision));
CREATE DOMAIN vital_signs_weight AS double precision
    CONSTRAINT weight_check CHECK (VALUE >= (0)::double precision);
CREATE DOMAIN vital_signs_weight_unit AS varchar(10)
    CONSTRAINT weight_unit_check CHECK (VALUE IN ('lbs', 'kg'));
CREATE DOMAIN vital_signs_height AS double precision
    CONSTRAINT height_check CHECK (VALUE >= (0)::double precision);
CREATE DOMAIN vital_signs_height_unit AS varchar(10)
    CONSTRAINT height_unit_check CHECK (VALUE IN ('inches', 'cm'));
CREATE DOMAIN vital_signs_bmi AS double precision
    CONSTRAINT bmi_check CHECK (VALUE >= (0)::double precision);
CREATE DOMAIN vital_signs_pain AS integer
    CONSTRAINT pain_check CHECK ((VALUE >= 0) AND (VALUE <= 10));
ALTER TABLE vital_signs
    DROP CONSTRAINT vital_signs_temperature_check,
    DROP CONSTRAINT vital_signs_temperature_unit_check,
    DROP CONSTRAINT vital_signs_heart_rate_check,
    DROP CONSTRAINT vital_signs_respiratory_rate_check,
    DROP CONSTRAINT vital_signs_blood_pressure_systolic_check,
    DROP CONSTRAINT vital_signs_blood_pressure_diastolic_check,
    DROP CONSTRAINT vital_signs_oxygen_saturation_check,
    DROP CONSTRAINT vital_signs_weight_check,
    DROP CONSTRAINT vital_signs_weight_unit_check,
    DROP CONSTRAINT vital_signs_height_check,
    DROP CONSTRAINT vital_signs_height_unit_check,
    DROP CONSTRAINT vital_signs_bmi_check,
    DROP CONSTRAINT vital_signs_pain_check,
    ALTER COLUMN temperature TYPE vital_signs_temperature,
    ALTER COLUMN temperature_unit TYPE vital_signs_temperature_unit,
    ALTER COLUMN heart_rate TYPE vital_signs_heart_rate,
    ALTER COLUMN respiratory_rate TYPE vital_signs_respiratory_rate,
    ALTER COLUMN blood_pressure_systolic TYPE vital_signs_blood_pressure_systolic,
    ALTER COLUMN blood_pressure_diastolic TYPE vital_signs_blood_pressure_diastolic,
    ALTER COLUMN oxygen_saturation TYPE vital_signs_oxygen_saturation,
    ALTER COLUMN weight TYPE vital_signs_weight,
    ALTER COLUMN weight_unit TYPE vital_signs_weight_unit,
    ALTER COLUMN height TYPE vital_signs_height,
    ALTER COLUMN height_unit TYPE vital_signs_height_unit,
    ALTER COLUMN bmi TYPE vital_signs_bmi,
    ALTER COLUMN pain TYPE vital_signs_pain;

CREATE DOMAIN witness_statements_witness_type AS varchar(50)
    CONSTRAINT witness_type_check CHECK (VALUE IN ('STAFF', 'STUDENT', 'PARENT', 'GUARDIAN',
        'VISITOR', 'OTHER'));
ALTER TABLE witness_statements
    DROP CONSTRAINT witness_statements_witness_type_check,
    ALTER COLUMN witness_type TYPE witness_statements_witness_type;
