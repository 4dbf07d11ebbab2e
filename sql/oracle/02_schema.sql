-- nextwatch catalog on Oracle: seed 002's movie and series tables (plus tmdb_id, genres, rating_count,
-- rating_avg), owned by the application user from 01_app_user.sh. Run as SYS at the Oracle
-- container's first start. Kept equal to services/stores/catalog.py by tests/test_oracle_sql.py:
-- change both together.
WHENEVER SQLERROR EXIT SQL.SQLCODE
ALTER SESSION SET CONTAINER = FREEPDB1;
ALTER SESSION SET CURRENT_SCHEMA = nextwatch;

CREATE TABLE series (
    series_id INTEGER NOT NULL,
    series_title VARCHAR2(500 CHAR) NOT NULL,
    inferred CHAR(1) DEFAULT 'N' NOT NULL,
    useyn CHAR(1) DEFAULT 'Y' NOT NULL,
    regtime DATE NOT NULL,
    CONSTRAINT pk_series PRIMARY KEY (series_id),
    CONSTRAINT ck_series_useyn CHECK (useyn IN ('Y', 'N')),
    CONSTRAINT ck_series_inferred CHECK (inferred IN ('Y', 'N'))
);

CREATE TABLE movie (
    movie_id INTEGER NOT NULL,
    movie_title VARCHAR2(500 CHAR) NOT NULL,
    original_language VARCHAR2(16 CHAR),
    original_title VARCHAR2(500 CHAR),
    poster_path VARCHAR2(200 CHAR),
    overview CLOB,
    overview_language VARCHAR2(16 CHAR),
    series_id INTEGER,
    release_date DATE,
    runtime INTEGER,
    tagline VARCHAR2(1000 CHAR),
    imdb_id VARCHAR2(20 CHAR),
    adult CHAR(1) DEFAULT 'N' NOT NULL,
    useyn CHAR(1) DEFAULT 'Y' NOT NULL,
    regtime DATE NOT NULL,
    tmdb_id INTEGER,
    genres VARCHAR2(500 CHAR),
    rating_count INTEGER DEFAULT 0 NOT NULL,
    rating_avg FLOAT,
    CONSTRAINT pk_movie PRIMARY KEY (movie_id),
    CONSTRAINT ck_movie_adult CHECK (adult IN ('Y', 'N')),
    CONSTRAINT ck_movie_useyn CHECK (useyn IN ('Y', 'N')),
    CONSTRAINT fk_movie_series FOREIGN KEY (series_id) REFERENCES series (series_id)
);

CREATE INDEX ix_movie_series_id ON movie (series_id);
CREATE INDEX ix_movie_title ON movie (movie_title);

-- viewers' events (POST /events), kept equal to services/stores/events.py: `at` and `received` in UTC
CREATE TABLE event (
    event_id VARCHAR2(128 CHAR) NOT NULL,
    user_id VARCHAR2(64 CHAR) NOT NULL,
    movie_id INTEGER NOT NULL,
    type VARCHAR2(16 CHAR) NOT NULL,
    rating FLOAT,
    at DATE NOT NULL,
    received DATE NOT NULL,
    CONSTRAINT pk_event PRIMARY KEY (event_id),
    CONSTRAINT ck_event_type CHECK (type IN ('watched', 'completed', 'abandoned', 'rated', 'not_interested'))
);

CREATE INDEX ix_event_user_order ON event (user_id, at, received, event_id);

-- the lists answered to known viewers under experiments, kept equal to services/stores/exposures.py
CREATE TABLE exposure (
    request_id VARCHAR2(128 CHAR) NOT NULL,
    user_id VARCHAR2(64 CHAR) NOT NULL,
    experiment VARCHAR2(64 CHAR),
    variant VARCHAR2(64 CHAR),
    strategy VARCHAR2(32 CHAR) NOT NULL,
    items VARCHAR2(4000 CHAR) NOT NULL,
    served DATE NOT NULL,
    CONSTRAINT pk_exposure PRIMARY KEY (request_id)
);

CREATE INDEX ix_exposure_experiment ON exposure (experiment, served);
