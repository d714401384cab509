"""The demo population: about 1,000 subjects, generated the same way on every machine.

Three are named in the README: ada@example.com (in all four systems, invoices this year and last),
grace@example.com (no invoices), and tracked@example.com (only in analytics).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SEED = 20260617  # the privacy policy's date: any constant keeps the data identical across runs
POPULATION = 1000

_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret",
          "Ken", "Radia", "Tim", "Sophie", "Lieve", "Jan", "Els", "Pieter", "Marie", "Luc", "An"]
_LAST = ["Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes", "Goossens",
         "Wouters", "De Smet", "Dubois", "Lambert", "Martin", "Dupont", "Lovelace", "Hopper"]
_COMPANIES = ["Acme Analytics BV", "Schelde Data NV", "Kempen Tag Co", "Brabant Metrics BV",
              "Meuse Media SRL", "Noord Commerce BV", "Leuven Labs NV", "Gent Growth BV"]
_CITIES = [("2000", "Antwerpen"), ("1000", "Brussels"), ("9000", "Gent"), ("3000", "Leuven"),
           ("8000", "Brugge"), ("4000", "Liège")]


@dataclass(frozen=True)
class DemoSubject:
    index: int
    email: str
    first_name: str
    last_name: str
    phone: str
    company: str
    street: str
    postcode: str
    city: str
    vat_number: str | None
    customer_number: str
    in_crm: bool
    in_billing: bool
    has_invoices: bool
    in_email_marketing: bool
    in_analytics: bool

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


def _named() -> list[DemoSubject]:
    return [
        DemoSubject(0, "ada@example.com", "Ada", "Lovelace", "+32 470 10 18 15",
                    "Analytical Engines BV", "Aalmoezenierstraat 1", "2000", "Antwerpen",
                    "BE0123456749", "C-000000", True, True, True, True, True),
        DemoSubject(1, "grace@example.com", "Grace", "Hopper", "+32 470 19 06 12",
                    "Cobol Consulting NV", "Meir 12", "2000", "Antwerpen",
                    None, "C-000001", True, True, False, True, True),
        DemoSubject(2, "tracked@example.com", "Tracy", "Tracked", "+32 470 00 00 02",
                    "", "Kouter 3", "9000", "Gent",
                    None, "C-000002", False, False, False, False, True),
    ]


def demo_subjects() -> list[DemoSubject]:
    rng = random.Random(SEED)
    subjects = _named()
    for index in range(len(subjects), POPULATION):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        postcode, city = rng.choice(_CITIES)
        in_billing = rng.random() < 0.6
        subjects.append(DemoSubject(
            index=index,
            email=f"{first.lower()}.{last.lower().replace(' ', '')}.{index}@example.org",
            first_name=first, last_name=last,
            phone=f"+32 4{rng.randint(70, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
            company=rng.choice(_COMPANIES),
            street=f"{rng.choice(['Meir', 'Kouter', 'Grote Markt', 'Bondgenotenlaan'])} {rng.randint(1, 200)}",
            postcode=postcode, city=city,
            vat_number=f"BE0{rng.randint(100000000, 999999999)}" if in_billing and rng.random() < 0.5 else None,
            customer_number=f"C-{index:06d}",
            in_crm=rng.random() < 0.9,
            in_billing=in_billing,
            has_invoices=in_billing and rng.random() < 0.8,
            in_email_marketing=rng.random() < 0.7,
            in_analytics=rng.random() < 0.95,
        ))
    return subjects
