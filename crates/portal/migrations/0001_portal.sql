-- The programme office's database: registry, verified evidence, targets, vouchers on a
-- double-entry ledger, needs and offers, and the audit trail.
--
-- Tenant isolation lives here, not only in the API: every tenant table has row-level security
-- (forced, so the owner is bound too) keyed on settings the portal writes at the start of each
-- transaction (`aifactory.role`, `aifactory.plant`, `aifactory.provider`), and the portal runs
-- its queries as the role `aifactory_portal`, which is neither superuser nor owner. Times are
-- milliseconds since the Unix epoch (the caller's clock, so tests and seeds are reproducible);
-- money is whole fen (0.01 yuan) in bigint, never floating point.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aifactory_portal') THEN
        BEGIN
            CREATE ROLE aifactory_portal NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- another migration created it at the same moment
        END;
    END IF;
    IF NOT pg_has_role(current_user, 'aifactory_portal', 'MEMBER') THEN
        EXECUTE format('GRANT aifactory_portal TO %I', current_user);
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO aifactory_portal', current_schema());
END
$$;

-- Who is asking, as the portal set it for this transaction ('' outside one).
CREATE FUNCTION portal_role() RETURNS text LANGUAGE sql STABLE
    AS $$ SELECT coalesce(current_setting('aifactory.role', true), '') $$;
CREATE FUNCTION portal_plant() RETURNS text LANGUAGE sql STABLE
    AS $$ SELECT coalesce(current_setting('aifactory.plant', true), '') $$;
CREATE FUNCTION portal_provider() RETURNS text LANGUAGE sql STABLE
    AS $$ SELECT coalesce(current_setting('aifactory.provider', true), '') $$;
-- Programme staff see every tenant; `system` is the portal itself (sign-in, NATS ingest, seeding).
CREATE FUNCTION portal_staff() RETURNS boolean LANGUAGE sql STABLE
    AS $$ SELECT portal_role() IN ('officer', 'assessor', 'system') $$;
CREATE FUNCTION portal_officer() RETURNS boolean LANGUAGE sql STABLE
    AS $$ SELECT portal_role() IN ('officer', 'system') $$;

-- Rows of the books and the audit trail are never changed or removed.
CREATE FUNCTION portal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: rows are never changed or removed', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TABLE plants (
    id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    industry text NOT NULL CHECK (length(industry) BETWEEN 1 AND 80),
    district text NOT NULL CHECK (length(district) BETWEEN 1 AND 80),
    -- 'large': annual revenue ≥ 20 M yuan (the statistics' large-scale threshold); 'sme' below.
    size_class text NOT NULL CHECK (size_class IN ('large', 'sme')),
    revenue_myuan double precision CHECK (revenue_myuan >= 0),
    -- The plant's evidence key (ed25519, hex): registered, or pinned by the first accepted bundle.
    public_key text,
    tier smallint NOT NULL DEFAULT 0,
    tier_at_ms bigint,
    ledger_entries bigint NOT NULL DEFAULT 0,
    ledger_head text,
    last_generated_at_ms bigint,
    benchmark_since_ms bigint,
    registered_at_ms bigint NOT NULL
);
CREATE INDEX plants_district_industry ON plants (district, industry);

CREATE TABLE providers (
    id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    registered_at_ms bigint NOT NULL
);

-- What a provider delivers: a typical scenario of the tier rules, in its stage.
CREATE TABLE offers (
    provider_id text NOT NULL REFERENCES providers,
    scenario text NOT NULL,
    stage text NOT NULL CHECK (stage IN ('design', 'testing', 'production', 'management', 'sales')),
    PRIMARY KEY (provider_id, scenario)
);
CREATE INDEX offers_scenario ON offers (scenario);

CREATE TABLE users (
    name text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    role text NOT NULL CHECK (role IN ('officer', 'assessor', 'plant', 'provider')),
    plant_id text REFERENCES plants,
    provider_id text REFERENCES providers,
    -- Only the SHA-256 of a token is kept.
    token_sha256 text NOT NULL UNIQUE,
    created_at_ms bigint NOT NULL,
    CHECK ((role = 'plant') = (plant_id IS NOT NULL)),
    CHECK ((role = 'provider') = (provider_id IS NOT NULL))
);

-- Every bundle received, accepted or not: the plant's verified history and the reasons for refusals.
CREATE TABLE evidence (
    id bigserial PRIMARY KEY,
    plant_id text NOT NULL REFERENCES plants,
    received_at_ms bigint NOT NULL,
    via text NOT NULL CHECK (via IN ('upload', 'nats', 'seed')),
    bundle_sha256 text NOT NULL,
    accepted boolean NOT NULL,
    reason text,
    generated_at_ms bigint,
    claimed_tier smallint,
    tier smallint,
    entries bigint,
    ledger_head text,
    public_key text,
    scenario_share double precision,
    streaming_share double precision,
    -- Depth per stage, in the order design, testing, production, management, sales.
    depths smallint[],
    missing_for_next_tier jsonb,
    CHECK (accepted = (reason IS NULL))
);
CREATE INDEX evidence_plant ON evidence (plant_id, id DESC);

-- How many plants per district and industry should reach a tier by the end of a year
-- (`*` = every industry of the district).
CREATE TABLE targets (
    year integer NOT NULL,
    district text NOT NULL,
    industry text NOT NULL,
    tier smallint NOT NULL CHECK (tier BETWEEN 1 AND 3),
    plants integer NOT NULL CHECK (plants >= 0),
    PRIMARY KEY (year, district, industry, tier)
);

CREATE TABLE budgets (
    id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    category text NOT NULL CHECK (category IN ('compute', 'scenario', 'services')),
    year integer NOT NULL,
    amount_fen bigint NOT NULL CHECK (amount_fen > 0),
    -- A voucher pays at most this share of an invoice (the plant co-pays the rest).
    max_share_pct smallint NOT NULL CHECK (max_share_pct BETWEEN 1 AND 100),
    -- What one firm may receive from budgets of this category in this year.
    cap_per_firm_fen bigint NOT NULL CHECK (cap_per_firm_fen > 0),
    created_at_ms bigint NOT NULL
);

CREATE SEQUENCE voucher_numbers;
CREATE TABLE vouchers (
    id text PRIMARY KEY,
    budget_id text NOT NULL REFERENCES budgets,
    category text NOT NULL,
    year integer NOT NULL,
    plant_id text NOT NULL REFERENCES plants,
    -- The contracted provider who may redeem it (chosen at issue or later by the plant).
    provider_id text REFERENCES providers,
    amount_fen bigint NOT NULL CHECK (amount_fen > 0),
    remaining_fen bigint NOT NULL,
    -- Given back to the budget on withdrawal or expiry.
    returned_fen bigint NOT NULL DEFAULT 0,
    max_share_pct smallint NOT NULL CHECK (max_share_pct BETWEEN 1 AND 100),
    issued_at_ms bigint NOT NULL,
    expires_at_ms bigint NOT NULL,
    status text NOT NULL CHECK (status IN ('active', 'spent', 'expired', 'withdrawn')),
    CHECK (remaining_fen >= 0 AND returned_fen >= 0 AND remaining_fen + returned_fen <= amount_fen),
    CHECK (expires_at_ms > issued_at_ms)
);
CREATE INDEX vouchers_plant ON vouchers (plant_id, year);
CREATE INDEX vouchers_provider ON vouchers (provider_id);
CREATE INDEX vouchers_budget ON vouchers (budget_id);

CREATE TABLE journal (
    id bigserial PRIMARY KEY,
    at_ms bigint NOT NULL,
    kind text NOT NULL CHECK (kind IN ('fund', 'issue', 'redeem', 'withdraw', 'expire')),
    memo text NOT NULL,
    actor text NOT NULL,
    budget_id text,
    voucher_id text
);

-- Signed amounts: every journal's postings sum to zero (checked below as they are inserted).
CREATE TABLE postings (
    id bigserial PRIMARY KEY,
    journal_id bigint NOT NULL REFERENCES journal,
    account text NOT NULL,
    amount_fen bigint NOT NULL CHECK (amount_fen <> 0)
);
CREATE INDEX postings_account ON postings (account);
CREATE INDEX postings_journal ON postings (journal_id);

-- A journal's postings arrive in one statement; the statement is refused unless each journal
-- in it sums to zero. The transition table holds exactly the new rows, whoever may read them.
CREATE FUNCTION portal_postings_balance() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced bigint;
BEGIN
    SELECT journal_id INTO unbalanced FROM new_postings
        GROUP BY journal_id HAVING sum(amount_fen) <> 0 LIMIT 1;
    IF unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'journal % does not balance: its postings do not sum to zero', unbalanced
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER postings_balance AFTER INSERT ON postings
    REFERENCING NEW TABLE AS new_postings FOR EACH STATEMENT
    EXECUTE FUNCTION portal_postings_balance();

CREATE TABLE redemptions (
    id bigserial PRIMARY KEY,
    voucher_id text NOT NULL REFERENCES vouchers,
    provider_id text NOT NULL REFERENCES providers,
    plant_id text NOT NULL REFERENCES plants,
    invoice_no text NOT NULL CHECK (length(invoice_no) BETWEEN 1 AND 80),
    kind text NOT NULL CHECK (kind IN ('invoice', 'metered')),
    invoice_total_fen bigint NOT NULL CHECK (invoice_total_fen > 0),
    covered_fen bigint NOT NULL CHECK (covered_fen > 0 AND covered_fen <= invoice_total_fen),
    at_ms bigint NOT NULL,
    journal_id bigint NOT NULL REFERENCES journal,
    -- One invoice is paid from vouchers once.
    UNIQUE (provider_id, invoice_no)
);
CREATE INDEX redemptions_voucher ON redemptions (voucher_id);

CREATE TABLE needs (
    id bigserial PRIMARY KEY,
    plant_id text NOT NULL REFERENCES plants,
    scenario text NOT NULL,
    stage text NOT NULL CHECK (stage IN ('design', 'testing', 'production', 'management', 'sales')),
    title text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
    posted_at_ms bigint NOT NULL,
    open boolean NOT NULL DEFAULT true
);
CREATE INDEX needs_plant ON needs (plant_id);
CREATE INDEX needs_scenario ON needs (scenario) WHERE open;

CREATE TABLE audit (
    id bigserial PRIMARY KEY,
    at_ms bigint NOT NULL,
    actor text NOT NULL,
    role text NOT NULL,
    action text NOT NULL,
    subject text NOT NULL,
    plant_id text,
    provider_id text,
    detail jsonb NOT NULL
);
CREATE INDEX audit_plant ON audit (plant_id);

CREATE TRIGGER journal_append_only BEFORE UPDATE OR DELETE ON journal
    FOR EACH ROW EXECUTE FUNCTION portal_append_only();
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION portal_append_only();
CREATE TRIGGER redemptions_append_only BEFORE UPDATE OR DELETE ON redemptions
    FOR EACH ROW EXECUTE FUNCTION portal_append_only();
CREATE TRIGGER evidence_append_only BEFORE UPDATE OR DELETE ON evidence
    FOR EACH ROW EXECUTE FUNCTION portal_append_only();
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION portal_append_only();

-- Row-level security: who sees and writes which rows.
ALTER TABLE plants ENABLE ROW LEVEL SECURITY;
ALTER TABLE plants FORCE ROW LEVEL SECURITY;
CREATE POLICY plants_read ON plants FOR SELECT USING (portal_staff() OR id = portal_plant());
CREATE POLICY plants_insert ON plants FOR INSERT WITH CHECK (portal_officer());
-- The portal updates a plant's tier from its own evidence (in the plant's transaction), and
-- staff designate benchmarks; nobody moves a row to another id.
CREATE POLICY plants_update ON plants FOR UPDATE
    USING (portal_staff() OR id = portal_plant()) WITH CHECK (portal_staff() OR id = portal_plant());

-- A plant's row caches its latest verified evidence; the cache can only hold what that evidence
-- says, and a plant cannot change its own registration, designation or pinned key.
CREATE FUNCTION portal_plants_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    latest record;
BEGIN
    IF NOT portal_staff() AND (
        (NEW.name, NEW.industry, NEW.district, NEW.size_class, NEW.revenue_myuan,
         NEW.benchmark_since_ms, NEW.registered_at_ms)
        IS DISTINCT FROM
        (OLD.name, OLD.industry, OLD.district, OLD.size_class, OLD.revenue_myuan,
         OLD.benchmark_since_ms, OLD.registered_at_ms)
        OR (OLD.public_key IS NOT NULL AND NEW.public_key IS DISTINCT FROM OLD.public_key))
    THEN
        RAISE EXCEPTION 'plant %: only programme staff change a registration, a designation or a pinned key', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (NEW.tier, NEW.ledger_head, NEW.ledger_entries)
        IS DISTINCT FROM (OLD.tier, OLD.ledger_head, OLD.ledger_entries) THEN
        SELECT tier, ledger_head, entries INTO latest FROM evidence
            WHERE plant_id = NEW.id AND accepted ORDER BY id DESC LIMIT 1;
        IF NOT FOUND OR (NEW.tier, NEW.ledger_head, NEW.ledger_entries)
            IS DISTINCT FROM (latest.tier, latest.ledger_head, latest.entries) THEN
            RAISE EXCEPTION 'plant %: its tier and ledger head are those of its latest accepted evidence, nothing else', NEW.id
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER plants_guard BEFORE UPDATE ON plants
    FOR EACH ROW EXECUTE FUNCTION portal_plants_guard();

ALTER TABLE providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE providers FORCE ROW LEVEL SECURITY;
-- The provider directory is public to everyone signed in.
CREATE POLICY providers_read ON providers FOR SELECT USING (portal_role() <> '');
CREATE POLICY providers_insert ON providers FOR INSERT WITH CHECK (portal_officer());

ALTER TABLE offers ENABLE ROW LEVEL SECURITY;
ALTER TABLE offers FORCE ROW LEVEL SECURITY;
CREATE POLICY offers_read ON offers FOR SELECT USING (portal_role() <> '');
CREATE POLICY offers_write ON offers FOR ALL
    USING (portal_officer() OR provider_id = portal_provider())
    WITH CHECK (portal_officer() OR provider_id = portal_provider());

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY users_read ON users FOR SELECT USING (
    portal_officer()
    OR (portal_role() = 'plant' AND plant_id = portal_plant())
    OR (portal_role() = 'provider' AND provider_id = portal_provider()));
CREATE POLICY users_insert ON users FOR INSERT WITH CHECK (portal_officer());

ALTER TABLE evidence ENABLE ROW LEVEL SECURITY;
ALTER TABLE evidence FORCE ROW LEVEL SECURITY;
CREATE POLICY evidence_read ON evidence FOR SELECT USING (portal_staff() OR plant_id = portal_plant());
CREATE POLICY evidence_insert ON evidence FOR INSERT
    WITH CHECK (portal_officer() OR plant_id = portal_plant());

ALTER TABLE targets ENABLE ROW LEVEL SECURITY;
ALTER TABLE targets FORCE ROW LEVEL SECURITY;
CREATE POLICY targets_read ON targets FOR SELECT USING (portal_staff());
CREATE POLICY targets_write ON targets FOR ALL USING (portal_officer()) WITH CHECK (portal_officer());

ALTER TABLE budgets ENABLE ROW LEVEL SECURITY;
ALTER TABLE budgets FORCE ROW LEVEL SECURITY;
CREATE POLICY budgets_read ON budgets FOR SELECT USING (portal_staff());
CREATE POLICY budgets_write ON budgets FOR ALL USING (portal_officer()) WITH CHECK (portal_officer());

ALTER TABLE vouchers ENABLE ROW LEVEL SECURITY;
ALTER TABLE vouchers FORCE ROW LEVEL SECURITY;
CREATE POLICY vouchers_read ON vouchers FOR SELECT USING (
    portal_staff() OR plant_id = portal_plant()
    OR (portal_role() = 'provider' AND provider_id = portal_provider()));
CREATE POLICY vouchers_insert ON vouchers FOR INSERT WITH CHECK (portal_officer());
-- Officers withdraw and expire; the plant names its provider; the provider redeems.
CREATE POLICY vouchers_update ON vouchers FOR UPDATE
    USING (portal_officer() OR plant_id = portal_plant()
           OR (portal_role() = 'provider' AND provider_id = portal_provider()))
    WITH CHECK (portal_officer() OR plant_id = portal_plant()
           OR (portal_role() = 'provider' AND provider_id = portal_provider()));

ALTER TABLE redemptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE redemptions FORCE ROW LEVEL SECURITY;
CREATE POLICY redemptions_read ON redemptions FOR SELECT USING (
    portal_staff() OR plant_id = portal_plant()
    OR (portal_role() = 'provider' AND provider_id = portal_provider()));
CREATE POLICY redemptions_insert ON redemptions FOR INSERT
    WITH CHECK (portal_officer() OR (portal_role() = 'provider' AND provider_id = portal_provider()));

-- The books: staff read them; officers and providers (redeeming) write them.
ALTER TABLE journal ENABLE ROW LEVEL SECURITY;
ALTER TABLE journal FORCE ROW LEVEL SECURITY;
CREATE POLICY journal_read ON journal FOR SELECT USING (portal_staff());
CREATE POLICY journal_insert ON journal FOR INSERT
    WITH CHECK (portal_officer() OR portal_role() = 'provider');
ALTER TABLE postings ENABLE ROW LEVEL SECURITY;
ALTER TABLE postings FORCE ROW LEVEL SECURITY;
CREATE POLICY postings_read ON postings FOR SELECT USING (portal_staff());
CREATE POLICY postings_insert ON postings FOR INSERT
    WITH CHECK (portal_officer() OR portal_role() = 'provider');

ALTER TABLE needs ENABLE ROW LEVEL SECURITY;
ALTER TABLE needs FORCE ROW LEVEL SECURITY;
-- Open needs are the marketplace: providers see them to offer; plants see only their own.
CREATE POLICY needs_read ON needs FOR SELECT USING (
    portal_staff() OR plant_id = portal_plant() OR (portal_role() = 'provider' AND open));
CREATE POLICY needs_insert ON needs FOR INSERT WITH CHECK (portal_officer() OR plant_id = portal_plant());
CREATE POLICY needs_update ON needs FOR UPDATE
    USING (portal_officer() OR plant_id = portal_plant())
    WITH CHECK (portal_officer() OR plant_id = portal_plant());

ALTER TABLE audit ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_read ON audit FOR SELECT USING (portal_officer());
-- Everyone's actions are audited; the row must name the caller's own tenant.
CREATE POLICY audit_insert ON audit FOR INSERT WITH CHECK (
    portal_role() <> '' AND role = portal_role()
    AND (portal_staff() OR plant_id IS NOT DISTINCT FROM nullif(portal_plant(), ''))
    AND (portal_staff() OR provider_id IS NOT DISTINCT FROM nullif(portal_provider(), '')));

-- The portal's role reads and writes through the policies above; the books, the evidence and
-- the audit trail get no UPDATE or DELETE at all.
DO $$
BEGIN
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON plants, users, offers, targets, budgets, vouchers, needs TO aifactory_portal');
    EXECUTE format('GRANT DELETE ON offers, targets TO aifactory_portal');
    EXECUTE format('GRANT SELECT, INSERT ON providers, evidence, journal, postings, redemptions, audit TO aifactory_portal');
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA %I TO aifactory_portal', current_schema());
END
$$;
