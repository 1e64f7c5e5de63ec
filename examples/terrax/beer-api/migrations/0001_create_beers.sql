-- The beer table. Lengths match the API's validation (model.rs), and the CHECK repeats the
-- abv range so rows written by other clients obey it too.
CREATE TABLE IF NOT EXISTS beers (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name        VARCHAR(100)    NOT NULL,
    brewery     VARCHAR(100)    NOT NULL,
    style       VARCHAR(50)     NOT NULL,
    abv         DOUBLE          NOT NULL,
    ibu         INT UNSIGNED    NULL,
    description VARCHAR(1000)   NULL,
    CONSTRAINT beers_abv_range CHECK (abv >= 0 AND abv <= 100)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
