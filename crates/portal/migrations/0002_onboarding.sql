-- SME onboarding: what a plant without sensors imported from its CSV exports, the plan the
-- portal made from it, and the first assessment of what the plant lacks. It never sets a tier:
-- tiers come from signed evidence only.
CREATE TABLE onboardings (
    id bigserial PRIMARY KEY,
    plant_id text NOT NULL REFERENCES plants,
    at_ms bigint NOT NULL,
    actor text NOT NULL,
    machines integer NOT NULL,
    orders integer NOT NULL,
    summary jsonb NOT NULL
);
CREATE INDEX onboardings_plant ON onboardings (plant_id, id DESC);
CREATE TRIGGER onboardings_append_only BEFORE UPDATE OR DELETE ON onboardings
    FOR EACH ROW EXECUTE FUNCTION portal_append_only();

ALTER TABLE onboardings ENABLE ROW LEVEL SECURITY;
ALTER TABLE onboardings FORCE ROW LEVEL SECURITY;
CREATE POLICY onboardings_read ON onboardings FOR SELECT USING (portal_staff() OR plant_id = portal_plant());
CREATE POLICY onboardings_insert ON onboardings FOR INSERT
    WITH CHECK (portal_officer() OR plant_id = portal_plant());
GRANT SELECT, INSERT ON onboardings TO aifactory_portal;
GRANT USAGE ON SEQUENCE onboardings_id_seq TO aifactory_portal;
