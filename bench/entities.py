"""Generate realistic, unique named entities (people, companies, streets, places, products) for hotword benchmarks.

Deterministic for a given seed. Words are drawn from curated lists plus names composed from English place-name
morphemes and from pronounceable brand syllables, so a million entries stay unique without becoming random
letter soup. Also generates hotword-free filler sentences for context and false-hint measurements.

    python bench/entities.py --n 1000 --seed 0 > entities.txt
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator

__all__ = ["FILLER_WORDS", "filler_words", "generate_entities"]

FIRST = """James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara Richard Susan Joseph
Jessica Thomas Sarah Charles Karen Christopher Nancy Daniel Lisa Matthew Betty Anthony Margaret Mark Sandra Donald
Ashley Steven Kimberly Paul Emily Andrew Donna Joshua Michelle Kenneth Dorothy Kevin Carol Brian Amanda George Melissa
Timothy Deborah Ronald Stephanie Edward Rebecca Jason Sharon Jeffrey Laura Ryan Cynthia Jacob Kathleen Gary Amy
Nicholas Angela Eric Shirley Jonathan Anna Stephen Brenda Larry Pamela Justin Emma Scott Nicole Brandon Helen Benjamin
Samantha Samuel Katherine Gregory Christine Alexander Debra Frank Rachel Patrick Carolyn Raymond Janet Jack Catherine
Dennis Maria Jerry Heather Tyler Diane Aaron Ruth Jose Julie Adam Olivia Nathan Joyce Henry Virginia Douglas Victoria
Zachary Kelly Peter Lauren Kyle Christina Ethan Joan Walter Evelyn Noah Judith Jeremy Megan Christian Andrea Keith
Cheryl Roger Hannah Terry Jacqueline Gerald Martha Harold Gloria Sean Teresa Austin Ann Carl Sara Arthur Madison
Lawrence Frances Dylan Kathryn Jesse Janice Jordan Jean Bryan Abigail Billy Alice Joe Julia Bruce Judy Gabriel Sophia
Logan Grace Albert Denise Willie Amber Alan Doris Juan Marilyn Wayne Danielle Elijah Beverly Randy Isabella Roy
Theresa Vincent Diana Ralph Natalie Eugene Brittany Russell Charlotte Bobby Marie Mason Kayla Philip Alexis Louis Lori
Priya Arjun Wei Mei Hiroshi Yuki Carlos Sofia Mateo Lucia Ahmed Fatima Omar Leila Ivan Olga Kofi Amara Sven Ingrid
Liam Aoife Rahul Ananya Chen Li Kenji Sakura Diego Camila Yusuf Zainab Pavel Nadia Tariq Aisha Lars Freya""".split()

LAST = """Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson
Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis Robinson Walker
Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter
Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers
Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez
Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez Powell
Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher Vasquez Simmons Romero Jordan
Patterson Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole Hayes Bryant Herrera Gibson Ellis Tran
Medina Aguilar Stevens Murray Ford Castro Marshall Owens Harrison Fernandez McDonald Woods Washington Kennedy Wells
Vargas Henry Chen Freeman Webb Tucker Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw
Snyder Mason Dixon Munoz Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills
Meyer Rice Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant Dunn Kelley Spencer
Hawkins Arnold Pierce Vazquez Hansen Peters Santos Hart Bradley Knight Elliott Cunningham Duncan Armstrong Hudson
Carroll Lane Riley Andrews Alvarado Ray Delgado Berry Perkins Hoffman Johnston Matthews Pena Richards Contreras Willis
Carpenter Lawrence Sandoval Guerrero George Chapman Rios Estrada Ortega Watkins Greene Nunez Wheeler Valdez Harper
Burke Larson Santiago Maldonado Morrison Franklin Carlson Austin Dominguez Carr Lawson Jacobs OBrien Lynch Singh Vega
Bishop Montgomery Oliver Jensen Harvey Williamson Gilbert Dean Sims Espinoza Howell Li Wong Reid Hanson Le McCoy
Garrett Burton Fuller Wang Weber Welch Rojas Lucas Marquez Fields Park Yang Little Banks Padilla Day Walsh Bowman
Schultz Luna Fowler Mejia Davidson Acosta Brewer May Holland Juarez Newman Pearson Curtis Cortez Douglas Schneider
Joseph Barrett Navarro Figueroa Keller Avila Wade Molina Stanley Hopkins Campos Barnett Bates Chambers Caldwell Beck
Lambert Miranda Byrd Craig Ayala Lowe Frazier Powers Neal Leonard Gregory Carrillo Sutton Fleming Rhodes Shelton
Schwartz Norris Jennings Watts Duran Walters Cohen McDaniel Moran Parks Steele Vaughn Becker Holt Deleon Barker Terry
Hale Leon Hail Benson Haynes Horton Miles Lyons Pham Graves Bush Thornton Wolfe Warner Cabrera McKinney Mann Zimmerman
Dawson Lara Fletcher Page McCarthy Love Robles Cervantes Solis Erickson Reeves Chang Klein Salinas Fuentes Baldwin
Daniel Simon Velasquez Hardy Higgins Aguirre Lin Cummings Chandler Sharp Barber Bowen Ochoa Dennis Robbins Liu Ramsey
Francis Griffith Paul Blair OConnor Cardenas Pacheco Cross Calderon Quinn Moss Swanson Chan Rivas Khan Rodgers
Serrano Fitzgerald Rosales Stevenson Christensen Manning Gill Curry McLaughlin Harmon McGee Gross Doyle Garner Newton
Burgess Reese Walton Blake Trujillo Adkins Brady Goodman Roman Webster Goodwin Fischer Huang Potter Delacruz Montoya
Todd Wu Hines Mullins Castaneda Malone Cannon Tate Mack Sherman Hubbard Hodges Zhang Guerra Wolf Valencia Saunders
Franco Rowe Gallagher Farmer Hammond Hampton Townsend Ingram Wise Gallegos Clarke Barton Schroeder Maxwell Waters
Logan Camacho Strickland Norman Person Colon Parsons Frank Harrington Glover Osborne Buchanan Casey Floyd Patton
Ibarra Ball Tyler Suarez Bowers Orozco Salas Cobb Gibbs Andrade Bauer Conner Moody Escobar McGuire Lloyd Mueller
Hartman French Kramer McBride Pope Lindsey Velazquez Norton McCormick Sparks Flynn Yates Hogan Marsh Macias Villanueva
Zamora Pratt Stokes Owen Ballard Lang Brock Villarreal Charles Drake Barrera Cain Patrick Pineda Burnett Mercado
Santana Shepherd Bautista Ali Shaffer Lamb Trevino McKenzie Hess Beil Olsen Cochran Morton Nash Wilkins Petersen
Briggs Shah Roth Nicholson Holloway Lozano Rangel Flowers Hoover Short Arias Mora Valenzuela Bryan Meyers Weiss
Underwood Bass Greer Summers Houston Carson Morrow Clayton Whitaker Decker Yoder Collier Zuniga Carey Wilcox Melendez
Poole Roberson Larsen Conley Davenport Copeland Massey Lam Huff Rocha Cameron Jefferson Hood Monroe Anthony Pittman
Huynh Randall Singleton Kirk Combs Mathis Christian Skinner Bradford Richard Galvan Wall Boone Kirby Wilkinson Bridges
Bruce Atkinson Velez Meza Roy Vincent York Hodge Villa Abbott Allison Tapia Gates Chase Sosa Sweeney Farrell Wyatt
Dalton Horn Barron Phelps Yu Dickerson Heath Foley Atkins Mathews Bonilla Acevedo Benitez Zavala Hensley Glenn Cisneros
Harrell Shields Rubio Choi Huffman Boyer Garrison Arroyo Bond Kane Hancock Callahan Dillon Cline Wiggins Grimes
Arellano Melton ONeill Savage Ho Beltran Pitts Parrish Ponce Rich Booth Koch Golden Ware Brennan McDowell Marks Cantu
Humphrey Baxter Sawyer Clay Tanner Hutchinson Kaur Berg Wiley Gilmore Russo Villegas Hobbs Keith Wilkerson Ahmed
Beard McClain Montes Mata Rosario Vang Walter Henson ONeal Mosley McClure Beasley Stephenson Snow Huerta Preston Vance
Barry Johns Eaton Blackwell Dyer Prince Macdonald Solomon Guevara Stafford English Hurst Woodard Cortes Shannon
Kemp Nolan McCullough Merritt Murillo Moon Salgado Strong Kline Cordova Barajas Roach Rosas Winters Jacobson Lester
Knox Bullock Kerr Leach Meadows Orr Davila Whitehead Pruitt Kent Conway McKee Barr David Dejesus Marin Berger McIntyre
Blankenship Gaines Palacios Cuevas Bartlett Durham Dorsey McCall ODonnell Stein Browning Stout Lowery Sloan McLean
Hendricks Calhoun Sexton Chung Gentry Hull Duarte Ellison Nielsen Gillespie Buck Middleton Sellers Leblanc Esparza
Hardin Bradshaw McIntosh Howe Livingston Frost Glass Morse Knapp Herman Stark Bravo Noble Spears Weeks Corona Frederick
Buckley McFarland Hebert Enriquez Hickman Quintero Randolph Schaefer Walls Trejo House Reilly Pennington Michael Conrad
Giles Benjamin Crosby Fitzpatrick Donovan Mays Mahoney Valentine Raymond Medrano Hahn McMillan Small Bentley Felix
Peck Lucero Boyle Hanna Pace Rush Hurley Harding McConnell Bernal Nava Ayers Everett Ventura Avery Pugh Mayer Bender
Shepard McMahon Landry Case Sampson Moses Magana Blackburn Dunlap Gould Duffy Vaughan Herring McKay Espinosa Rivers
Farley Bernard Ashley Friedman Potts Truong Costa Correa Blevins Nixon Clements Fry Delarosa Best Benton Lugo Portillo
Dougherty Crane Haley Phan Villalobos Blanchard Horne Finley Quintana Lynn Esquivel Bean Dodson Mullen Xiong Hayden
Cano Levy Huber Richmond Moyer Lim Frye Sheppard McCarty Avalos Booker Waller Parra Woodward Jaramillo Krueger Rasmussen
Brandt Peralta Donaldson Stuart Faulkner Maynard Galindo Coffey Estes Sanford Burch Maddox Vo OConnell Vu Andersen
Spence McPherson Church Schmitt Stanton Leal Cherry Compton Dudley Sierra Pollard Alfaro Hester Proctor Lu Hinton
Novak Good Madden McCann Terrell Jarvis Dickson Reyna Cantrell Mayo Branch Hendrix Rollins Rowland Whitney Duke Odom
Daugherty Travis Tang Archer""".split()

PLACE_HEAD = """Ash Brook Cal Dun El Fair Glen Hart Kings Lang Mar North Oak Pem Red Stan Thorn West Whit Wood Ald Bex
Bridge Chester Clif Cran Dal Deer Elm Fern Gold Green Hazel Hay High Holm Ivy Kirk Lark Lin Maple Mill Moor New Nor Pine
Rock Rose Salt Sand Shel Silver Spring Stone Sud Summer Sut Wal Wel Wen Wil Win York Bar Bel Bram Brad Brent Burn Cam
Car Coal Cold Dor Dray East Edge Fal Fox Gran Ham Hol Hun Ken Lea Lock Long Mel Mid Mon Nan Ox Pen Port Rad Rich Rye
South Sum Tam Tor Trent Ux Ver Wark Wey Wick Wind Wor""".split()
PLACE_TAIL = """ford field ton ley wood bury by ham well worth more dale ridge stead combe brook mouth gate hurst minster
port wick thorpe chester cliff haven holme land mere stow bourne side vale burn den hill borough ington ingham""".split()

STREET_TYPE = """Street Avenue Road Lane Drive Boulevard Court Place Terrace Way Close Crescent Parkway Square Row Grove
Hill Walk Gardens Circle""".split()
STREET_WORDS = """Church Main High Park Oak Pine Maple Cedar Elm Washington Lake Hill Mill River Spring Station Market Bridge
Chapel School Victoria Albert Queen King Prince Union Garden Forest Meadow Orchard Sunset Highland Harbor Willow
Chestnut Walnut Birch Cherry Lincoln Jefferson Franklin Madison Jackson Adams Monroe Grant Madison Broad Water Canal
Castle Abbey College Commercial North South East West Center""".split()

COMPANY_WORDS = """Global United Pacific Atlantic Summit Pinnacle Apex Vertex Horizon Quantum Stellar Nova Fusion Vector
Cobalt Crimson Silver Golden Northern Southern Eastern Western Blue Green Red Iron Granite Cedar Harbor Bridge Beacon
Crest Falcon Eagle Lion Tiger Phoenix Orion Atlas Titan Zenith Meridian Sterling Liberty Pioneer Frontier Heritage
Keystone Landmark Evergreen Riverside Lakeside Highland Coastal Metro Urban Prime Alpha Delta Sigma Omega""".split()
COMPANY_KIND = """Holdings Technologies Systems Solutions Logistics Partners Capital Industries Foods Pharma Motors Energy
Robotics Analytics Dynamics Labs Networks Consulting Construction Insurance Bank Media Studios Airlines Shipping Health
Foods Textiles Software Semiconductors Biotech Ventures Trust Group Electric Hotels Realty Brewing Coffee Bakery
Pharmacy Clinic Dental Legal Design Engineering Marine Aerospace Mining Steel Chemicals Telecom Security""".split()
COMPANY_SUFFIX = ["", "", "", "Inc", "Limited", "Corporation", "Company", "and Sons", "International"]

BRAND_ONSET = "b br c cl d dr f fl g gr k l m n p pr qu r s st t tr v z x ch sh th".split()
BRAND_VOWEL = "a e i o u ai ea o a e i".split()
BRAND_CODA = "n x r s l m nd nt ck ss".split()
BRAND_END = "ix ora ex io ia on ar el um iva ano ux ent ara ine".split()
PRODUCT_LINE = """Pro Max Ultra Plus Mini Air Lite Neo Prime Edge Note Pad Book Watch Buds Cam Drive Link Hub Go Zoom
Flex Sport Classic Studio Vision Sense Core Wave Pulse Spark""".split()

FILLER_WORDS = """the a an and or but so to of in on at for with from by about into over after before under
I you he she we they it this that these those my your our their his her its
is was are were be been being have has had do does did will would can could should may might must
go went going come came coming see saw seen look looked know knew think thought say said tell told
get got make made take took give gave find found want need like love use used call called ask asked
work worked try tried leave left feel felt put keep kept let begin seem help talk turn start show hear
play run move live believe bring happen write sit stand lose pay meet include continue set learn change
lead understand watch follow stop create speak read allow add spend grow open walk win offer remember
time year people way day man woman child world life hand part place case week company system program
question work government number night point home water room mother area money story fact month lot right
study book eye job word business issue side kind head house service friend father power hour game line end
member law car city community name president team minute idea kid body information back parent face
others level office door health person art war history party result change morning reason research girl
guy moment air teacher force education good new first last long great little own other old right big high
different small large next early young important few public bad same able very really just now then
also well only even back there still here too never always often sometimes today tomorrow yesterday
please thanks okay yes no maybe actually probably quite rather pretty sure certainly nothing something
everything anything someone everyone weather coffee lunch dinner meeting email phone message train bus
ticket doctor appointment price order delivery package address schedule report budget plan project
""".split()


def _brand(rng: random.Random) -> str:
    parts = [rng.choice(BRAND_ONSET) + rng.choice(BRAND_VOWEL)]
    if rng.random() < 0.5:
        parts.append(rng.choice(BRAND_CODA) + rng.choice(BRAND_VOWEL))
    parts.append(rng.choice(BRAND_END) if rng.random() < 0.7 else rng.choice(BRAND_CODA))
    return "".join(parts).capitalize()


def _place(rng: random.Random) -> str:
    return rng.choice(PLACE_HEAD) + rng.choice(PLACE_TAIL)


def _surname(rng: random.Random) -> str:
    return rng.choice(LAST) if rng.random() < 0.7 else _place(rng)


def _person(rng: random.Random) -> str:
    first = rng.choice(FIRST)
    r = rng.random()
    if r < 0.15:
        return f"{first} {rng.choice('ABCDEFGHJKLMNPRSTW')}. {_surname(rng)}"
    if r < 0.25:
        return f"{first} {rng.choice(FIRST)} {_surname(rng)}"
    if r < 0.32:
        return f"{first} {_surname(rng)}-{_surname(rng)}"
    return f"{first} {_surname(rng)}"


def _company(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.35:
        head = _surname(rng)
    elif r < 0.6:
        head = rng.choice(COMPANY_WORDS)
    elif r < 0.8:
        head = _brand(rng)
    else:
        head = f"{_surname(rng)} and {_surname(rng)}"
    return " ".join(p for p in (head, rng.choice(COMPANY_KIND), rng.choice(COMPANY_SUFFIX)) if p)


def _street(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.4:
        name = rng.choice(STREET_WORDS)
    elif r < 0.7:
        name = _surname(rng)
    else:
        name = _place(rng)
    return f"{name} {rng.choice(STREET_TYPE)}"


def _place_entity(rng: random.Random) -> str:
    r = rng.random()
    base = _place(rng)
    if r < 0.5:
        return base
    if r < 0.7:
        return f"{rng.choice(['North', 'South', 'East', 'West', 'Upper', 'Lower', 'Great', 'Little', 'New'])} {base}"
    if r < 0.85:
        return f"{base} {rng.choice(['Park', 'Green', 'Heath', 'Common', 'Junction', 'Harbour', 'Valley', 'Bay'])}"
    return f"{base} on {rng.choice(['Sea', 'Thames', 'Avon', 'Trent', 'Tyne', 'Wye', 'Severn'])}"


def _product(rng: random.Random) -> str:
    brand = _brand(rng)
    r = rng.random()
    if r < 0.4:
        return f"{brand} {rng.choice(PRODUCT_LINE)} {rng.randint(2, 99)}"
    if r < 0.7:
        return f"{brand} {rng.choice(PRODUCT_LINE)}"
    return f"{brand} {rng.choice(PRODUCT_LINE)} {rng.choice(PRODUCT_LINE)}"


_KINDS = ((0.35, _person), (0.55, _company), (0.70, _street), (0.85, _place_entity), (1.0, _product))


def generate_entities(n: int, seed: int = 0) -> Iterator[str]:
    """Yield `n` unique entity names (case-insensitively unique), deterministically for `seed`."""
    rng = random.Random(seed)
    seen: set[str] = set()
    misses = 0
    while len(seen) < n:
        r = rng.random()
        make = next(f for p, f in _KINDS if r < p)
        name = make(rng)
        key = name.lower()
        if key in seen:
            misses += 1
            if misses > 50 * n + 1000:
                raise RuntimeError(f"could only generate {len(seen)} unique entities")
            continue
        seen.add(key)
        yield name


def filler_words(rng: random.Random, count: int) -> list[str]:
    """`count` common English words: hotword-free context."""
    return [rng.choice(FILLER_WORDS) for _ in range(count)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for name in generate_entities(args.n, args.seed):
        sys.stdout.write(name + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
