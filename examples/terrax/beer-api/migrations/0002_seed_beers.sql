-- A few beers so that the Swagger UI walkthrough has something to list right away.
INSERT INTO beers (name, brewery, style, abv, ibu, description) VALUES
    ('Terrax Pilsner', 'Terrax Micro-Brewery Inc', 'Pilsner', 5.0, 35,
     'Crisp, golden and the reason the brewery exists.'),
    ('Fargate Pale Ale', 'Terrax Micro-Brewery Inc', 'Pale Ale', 5.6, 40,
     'Scales to demand.'),
    ('Serverless Stout', 'Terrax Micro-Brewery Inc', 'Stout', 7.2, 55, NULL),
    ('Kubernetes Kölsch', 'Terrax Micro-Brewery Inc', 'Kölsch', 4.8, NULL,
     'Light, with a hint of YAML.'),
    ('Node Group Dubbel', 'Terrax Micro-Brewery Inc', 'Dubbel', 7.0, 20,
     'Provisioned the old-fashioned way.');
